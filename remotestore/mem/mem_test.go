package mem_test

import (
	"testing"

	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/mem"
	"github.com/stratalog/strata/remotestore/storetest"
)

func TestAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store { return mem.New() })
}
