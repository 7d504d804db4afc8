package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProperties(t *testing.T) {
	cases := []struct {
		name string
		text string
		want []Property
		err  string
	}{
		{"separators", "a=1\nb: 2\nc 3\nd\t4\ne\f5\n", []Property{{"a", "1", 1}, {"b", "2", 2}, {"c", "3", 3}, {"d", "4", 4}, {"e", "5", 5}}, ""},
		{"blanks around separator", "  a  =  1\n\tb :\t2\nc   =   \n", []Property{{"a", "1", 1}, {"b", "2", 2}, {"c", "", 3}}, ""},
		{"trailing blanks kept", "a = x  \n", []Property{{"a", "x  ", 1}}, ""},
		{"key only", "flag\n", []Property{{"flag", "", 1}}, ""},
		{"blank then separator", "a = = b\n", []Property{{"a", "= b", 1}}, ""},
		{"second separator in value", "a=b=c\nx:y:z\n", []Property{{"a", "b=c", 1}, {"x", "y:z", 2}}, ""},
		{"comments", "# c\n! c\n   # indented\na=1 # not a comment\n", []Property{{"a", "1 # not a comment", 4}}, ""},
		{"blank lines", "\n\n   \n\t\na=1", []Property{{"a", "1", 5}}, ""},
		{"continuation", "a=one, \\\n    two, \\\n\tthree\nb=2\n", []Property{{"a", "one, two, three", 1}, {"b", "2", 4}}, ""},
		{"even backslashes do not continue", "a=x\\\\\nb=y\n", []Property{{"a", `x\`, 1}, {"b", "y", 2}}, ""},
		{"continuation into blank line ends", "a=x\\\n\nb=y\n", []Property{{"a", "x", 1}, {"b", "y", 3}}, ""},
		{"continued line starting with #", "a=x\\\n  #y\n", []Property{{"a", "x#y", 1}}, ""},
		{"comment does not continue", "# c \\\na=1\n", []Property{{"a", "1", 2}}, ""},
		{"continuation at EOF", "a=x\\", []Property{{"a", "x", 1}}, ""},
		{"continued key", "lo\\\n  ng=1\n", []Property{{"long", "1", 1}}, ""},
		{"escapes", `a=t\tn\nr\rf\f\q\\` + "\n", []Property{{"a", "t\tn\nr\rf\fq\\", 1}}, ""},
		{"escaped separators in key", `a\=b\:c\ d=v` + "\n", []Property{{"a=b:c d", "v", 1}}, ""},
		{"unicode escapes", `a=\u0041\u00e9\u20AC` + "\n", []Property{{"a", "Aé€", 1}}, ""},
		{"surrogate pair", `a=\uD83D\uDE00` + "\n", []Property{{"a", "😀", 1}}, ""},
		{"utf-8 text", "clé=valeür\n", []Property{{"clé", "valeür", 1}}, ""},
		{"CRLF and CR", "a=1\r\nb=2\rc=3\r\n", []Property{{"a", "1", 1}, {"b", "2", 2}, {"c", "3", 3}}, ""},
		{"CRLF continuation", "a=1\\\r\n  2\r\n", []Property{{"a", "12", 1}}, ""},
		{"duplicates kept in order", "a=1\na=2\n", []Property{{"a", "1", 1}, {"a", "2", 2}}, ""},
		{"malformed unicode", "x=1\na=\\u12G4\n", nil, `line 2: malformed \uXXXX escape`},
		{"short unicode", "a=\\u12\n", nil, `line 1: malformed \uXXXX escape`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseProperties(c.text)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func FuzzParseProperties(f *testing.F) {
	f.Add("a=1\nb: \\u0041\\\n  c\n# x\n")
	f.Add("\\")
	f.Add("a\\=b c")
	f.Fuzz(func(t *testing.T, text string) {
		props, err := ParseProperties(text)
		if err != nil {
			return
		}
		for _, p := range props {
			if p.Line < 1 {
				t.Fatalf("line %d", p.Line)
			}
		}
	})
}
