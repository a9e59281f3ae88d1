package push

import (
	"fmt"
	"math"
	"os"
	"testing"
)

// TestMain runs every test twice: with the stream read as one, as from a
// pipe, and with each upload reading its own share, as from a file, at
// any block size (up to 16 shares).
func TestMain(m *testing.M) {
	minShareBlock = math.MaxInt
	if code := m.Run(); code != 0 {
		os.Exit(code)
	}
	fmt.Println("again, each upload reading its own share of the stream")
	minShareBlock = 0
	os.Exit(m.Run())
}
