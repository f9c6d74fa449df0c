package avro

import "testing"

func benchEvent() *OrderEvent {
	return &OrderEvent{EventID: "msg_2Xb9", Provider: "standardwebhooks", Type: OrderPaid, OrderID: "o-100042",
		Version: 1795521600123, OccurredAt: ms(1795521600123), ReceivedAt: ms(1795521600200), Currency: "EUR",
		Lines: []LineItem{{LineID: "1", SKU: "TEE-BLK-M", Quantity: 2, UnitPriceMinor: 1999},
			{LineID: "2", SKU: "CAP-RED", Quantity: 1, UnitPriceMinor: 1500}}, CorrelationID: "9f2c1a"}
}

func BenchmarkMarshalOrderEvent(b *testing.B) {
	reg, e := Default(), benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalOrderEvent(b *testing.B) {
	reg := Default()
	data, _ := reg.Marshal(benchEvent())
	b.ReportAllocs()
	for b.Loop() {
		var e OrderEvent
		if err := reg.Unmarshal(data, &e); err != nil {
			b.Fatal(err)
		}
	}
}
