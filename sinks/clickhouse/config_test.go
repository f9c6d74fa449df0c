package clickhouse

import (
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/topology"
)

func parse(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	var c Config
	fs := conf.New("sink")
	c.RegisterFlags(fs)
	if _, err := fs.Parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return c, err
	}
	c.Topics = topology.NamesFor("")
	return c, c.Validate()
}

// The batch settings default to what their docs say, come from their
// variables, and a linger that would hold rebalances too long is refused.
func TestBatchSettings(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil || c.Stream.MaxRecords != 20000 || c.Stream.Linger != DefaultLinger || DefaultLinger != 100*time.Millisecond {
		t.Fatalf("max records %d, linger %v (%v); documented 20000 and 100ms", c.Stream.MaxRecords, c.Stream.Linger, err)
	}
	if c, err := parse(t, map[string]string{"SHOPSTREAM_SINK_LINGER": "0s", "SHOPSTREAM_SINK_MAX_RECORDS": "100"}); err != nil ||
		c.Stream.Linger != 0 || c.Stream.MaxRecords != 100 {
		t.Fatalf("from variables: linger %v, max records %d (%v)", c.Stream.Linger, c.Stream.MaxRecords, err)
	}
	for _, bad := range []string{"-1ms", "11s"} {
		if _, err := parse(t, map[string]string{"SHOPSTREAM_SINK_LINGER": bad}); err == nil {
			t.Errorf("linger %s accepted", bad)
		}
	}
}
