package stock

import "testing"

// The values are Redis's own: CLUSTER KEYSLOT as the cluster specification
// and the command's documentation show it.
func TestSlotIsRedisClusters(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":      12739, // CRC16/XMODEM's check value, 0x31C3
		"somekey":        11058,
		"foo{hash_tag}":  2515,
		"bar{hash_tag}":  2515,
		"hash_tag":       2515,
		"foo":            12182,
		"foo{{bar}}zap":  Slot("{bar"),
		"foo{bar}{zap}":  Slot("bar"),
		"inv:{SKU-1}:ln": Slot("SKU-1"),
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if Slot("{}foo") == Slot("foo") {
		t.Error("an empty hash tag must hash the whole key")
	}
}
