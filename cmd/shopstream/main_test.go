package main

import (
	"strings"
	"testing"
)

// Commands refuse what they cannot do before touching any service.
func TestCommandsRefuseBadArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"process", "payments"}, "process orders|inventory"},
		{[]string{"topics", "delete"}, "topics plan|apply"},
		{[]string{"stock", "adjust", "-sku", "A"}, "needs -sku, a non-zero -qty and -id"},
		{[]string{"stock", "adjust", "-sku", "a{b}", "-qty", "1", "-id", "x"}, "brace"},
		{[]string{"ingest", "-webhook-secret", ""}, "no webhook secret"},
		{[]string{"run", "-partitions", "0"}, "at least 1"},
		{[]string{"run", "-log-level", "loud"}, "log level"},
		{[]string{"loadgen", "-url", "http://10.0.0.1/webhooks/standardwebhooks", "-webhook-secret", "whsec_c2VjcmV0"}, "loopback"},
	} {
		err := run(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("shopstream %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
