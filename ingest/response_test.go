package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The answer to an acceptance is written by hand; it must be what
// encoding/json's Encoder writes, for any delivery id a sender can send.
func TestResponseJSONIsEncodingJSONs(t *testing.T) {
	for _, id := range []string{"", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "evt_1", "a\"b", `a\b`, "<script>", "a&b", "tab\there",
		"nul\x00", "é", "\u2028", "\xff\xfe", "~ !"} {
		for _, status := range []string{"accepted", "duplicate"} {
			r := response{Status: status, DeliveryID: id}
			if got, want := r.appendJSON(nil), encodingJSON(t, r); !bytes.Equal(got, want) {
				t.Errorf("%q: %s, want %s", id, got, want)
			}
		}
	}
}

func FuzzResponseJSON(f *testing.F) {
	for _, id := range []string{"msg_1", "a\"b", "é", "\xff"} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		r := response{Status: "accepted", DeliveryID: id}
		if got, want := r.appendJSON(nil), encodingJSON(t, r); !bytes.Equal(got, want) {
			t.Fatalf("%q: %s, want %s", id, got, want)
		}
	})
}

func encodingJSON(t *testing.T, r response) []byte {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
