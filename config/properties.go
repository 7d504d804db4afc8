package config

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Property is one key/value pair of a properties file.
type Property struct {
	Key, Value string
	Line       int // 1-based line where the entry starts
}

// ParseProperties reads the java.util.Properties text format: "key=value",
// "key: value" or "key value"; blank lines and lines whose first non-blank
// character is '#' or '!' ignored; a line ending in an odd number of
// backslashes continues on the next, whose leading blanks are dropped; escapes
// \t \n \r \f \uXXXX (surrogate pairs combine), and a backslash before any
// other character stands for that character (so "\=", "\:", "\ " and "\\"
// put separators and blanks in keys). Blanks (space, tab, form feed) before
// the key and around the separator are dropped; trailing blanks of a value are
// kept, as Java keeps them (Load trims values before parsing them, as Kafka
// does). Later entries replace earlier ones when applied in order.
//
// Unlike Properties.load(InputStream), which reads ISO-8859-1, the text is
// read as UTF-8.
func ParseProperties(text string) ([]Property, error) {
	var out []Property
	lineNo := 0
	lines := splitNatural(text)
	for i := 0; i < len(lines); i++ {
		lineNo = i + 1
		start := lineNo
		line := strings.TrimLeft(lines[i], " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		// Join continuation lines: an odd number of trailing backslashes.
		var logical strings.Builder
		for {
			if trailingBackslashes(line)%2 == 0 {
				logical.WriteString(line)
				break
			}
			logical.WriteString(line[:len(line)-1])
			if i+1 >= len(lines) {
				break
			}
			i++
			line = strings.TrimLeft(lines[i], " \t\f")
		}
		key, value, err := splitKeyValue(logical.String())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start, err)
		}
		out = append(out, Property{Key: key, Value: value, Line: start})
	}
	return out, nil
}

// splitNatural splits at \n, \r and \r\n.
func splitNatural(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	lines := strings.Split(text, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	return lines
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\f' }

// splitKeyValue splits a logical line (leading blanks removed) as
// Properties.load does, then unescapes both parts.
func splitKeyValue(line string) (string, string, error) {
	keyLen, valueStart := len(line), len(line)
	hasSep, escaped := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if !escaped && (c == '=' || c == ':') {
			keyLen, valueStart, hasSep = i, i+1, true
			break
		}
		if !escaped && isBlank(c) {
			keyLen, valueStart = i, i+1
			break
		}
		escaped = c == '\\' && !escaped
	}
	for valueStart < len(line) {
		c := line[valueStart]
		if !isBlank(c) {
			if hasSep || (c != '=' && c != ':') {
				break
			}
			hasSep = true
		}
		valueStart++
	}
	key, err := unescape(line[:keyLen])
	if err != nil {
		return "", "", err
	}
	value, err := unescape(line[valueStart:])
	if err != nil {
		return "", "", err
	}
	return key, value, nil
}

// unescape applies the escapes of the properties format. \u escapes are UTF-16
// code units, so text is assembled as UTF-16 and decoded at the end.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	units := make([]uint16, 0, len(s))
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= 0x80 {
			r, size = decodeRune(s[i:])
		}
		if r != '\\' {
			units = utf16.AppendRune(units, r)
			i += size
			continue
		}
		i++
		if i >= len(s) { // a lone trailing backslash is dropped
			break
		}
		c := s[i]
		i++
		switch c {
		case 't':
			units = append(units, '\t')
		case 'n':
			units = append(units, '\n')
		case 'r':
			units = append(units, '\r')
		case 'f':
			units = append(units, '\f')
		case 'u':
			if i+4 > len(s) {
				return "", fmt.Errorf(`malformed \uXXXX escape %q`, s[i-2:])
			}
			var u uint16
			for _, h := range []byte(s[i : i+4]) {
				d, ok := hexDigit(h)
				if !ok {
					return "", fmt.Errorf(`malformed \uXXXX escape %q`, s[i-2:i+4])
				}
				u = u<<4 | uint16(d)
			}
			units = append(units, u)
			i += 4
		default:
			r, size := rune(c), 1
			if c >= 0x80 {
				r, size = decodeRune(s[i-1:])
			}
			units = utf16.AppendRune(units, r)
			i += size - 1
		}
	}
	return string(utf16.Decode(units)), nil
}

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
