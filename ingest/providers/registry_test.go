package providers

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/conf"
)

func TestRegistryEnablesProvidersByTheirSecrets(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		args    []string
		want    []string
		wantErr string
	}{
		{"none set", nil, nil, nil, "SHOPSTREAM_STANDARDWEBHOOKS_SECRET or SHOPSTREAM_WEBHOOK_SECRET or SHOPSTREAM_STRIPE_SECRET"},
		{"its own variable", map[string]string{"SHOPSTREAM_STANDARDWEBHOOKS_SECRET": vecSecret}, nil, []string{"standardwebhooks"}, ""},
		{"the older variable", map[string]string{"SHOPSTREAM_WEBHOOK_SECRET": vecSecret}, nil, []string{"standardwebhooks"}, ""},
		{"the older flag", nil, []string{"-webhook-secret", "whsec_bmV3," + vecSecret}, []string{"standardwebhooks"}, ""},
		{"a bad secret", map[string]string{"SHOPSTREAM_STANDARDWEBHOOKS_SECRET": "whsec_%%%"}, nil, nil, "not whsec_<base64>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			fs := conf.New("t")
			c.RegisterFlags(fs)
			if _, err := fs.Parse(tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }); err != nil {
				t.Fatal(err)
			}
			enabled, err := c.Enabled()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			var names []string
			for _, p := range enabled {
				names = append(names, p.Name())
			}
			if err != nil || strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("enabled %v (%v), want %v", names, err, tt.want)
			}
		})
	}
}

// Help shows how many secrets are set, never a secret.
func TestHelpNeverShowsASecret(t *testing.T) {
	var c Config
	fs := conf.New("t")
	c.RegisterFlags(fs)
	if _, err := fs.Parse([]string{"-standardwebhooks-secret", vecSecret}, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	fs.Defaults(&help)
	if strings.Contains(help.String(), "MfKQ9r8G") || c.Tolerance != DefaultTolerance {
		t.Fatalf("help %s; tolerance %v", help.String(), c.Tolerance)
	}
}
