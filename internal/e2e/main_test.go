package e2e

import (
	"os"
	"testing"

	"github.com/tiercel/tiercel/internal/brokertest"
)

func TestMain(m *testing.M) { os.Exit(brokertest.Main(m)) }
