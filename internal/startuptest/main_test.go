package startuptest

import (
	"testing"

	"github.com/tenantgate/tenantgate/internal/testutil"
)

func TestMain(m *testing.M) { testutil.PostgresMain(m) }
