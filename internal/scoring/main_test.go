package scoring_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every LLM worker must exit on Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
