package avro

import "time"

// Order event types (the OrderEventType enum).
const (
	OrderUnknown   = "UNKNOWN"
	OrderCreated   = "CREATED"
	OrderPaid      = "PAID"
	OrderCancelled = "CANCELLED"
	OrderRefunded  = "REFUNDED"
	OrderFulfilled = "FULFILLED"
)

// Delta kinds (the DeltaKind enum).
const (
	DeltaUnknown    = "UNKNOWN"
	DeltaSale       = "SALE"
	DeltaRestock    = "RESTOCK"
	DeltaAdjustment = "ADJUSTMENT"
	DeltaCommit     = "COMMIT"
	DeltaRelease    = "RELEASE"
)

// Webhook outcomes (the WebhookOutcomeKind enum).
const (
	OutcomeAccepted  = "ACCEPTED"
	OutcomeDuplicate = "DUPLICATE"
	OutcomeRejected  = "REJECTED"
)

// Order transitions (the OrderTransition enum).
const (
	TransitionNone    = "NONE"
	TransitionSale    = "SALE"
	TransitionRestock = "RESTOCK"
	TransitionCommit  = "COMMIT"
	TransitionRelease = "RELEASE"
	// TransitionSaleCommit is a sale and its shipment at once: an order
	// first seen fulfilled.
	TransitionSaleCommit = "SALE_COMMIT"
)

// Drift actions (the DriftAction enum).
const (
	DriftNone        = "NONE"
	DriftHealed      = "HEALED"
	DriftNeedsReview = "NEEDS_REVIEW"
)

// Movement statuses (the MovementStatus enum).
const (
	MovementApplied = "APPLIED"
	MovementRefused = "REFUSED"
)

// OrderEvent is order_event.avsc.
type OrderEvent struct {
	EventID       string     `avro:"event_id"`
	Provider      string     `avro:"provider"`
	Type          string     `avro:"type"`
	OrderID       string     `avro:"order_id"`
	Version       int64      `avro:"version"`
	OccurredAt    time.Time  `avro:"occurred_at"`
	ReceivedAt    time.Time  `avro:"received_at"`
	Currency      string     `avro:"currency"`
	Lines         []LineItem `avro:"lines"`
	CorrelationID string     `avro:"correlation_id"`
	CustomerHash  string     `avro:"customer_hash"`
}

// LineItem is one line of an OrderEvent.
type LineItem struct {
	LineID         string `avro:"line_id"`
	SKU            string `avro:"sku"`
	Quantity       int64  `avro:"quantity"`
	UnitPriceMinor int64  `avro:"unit_price_minor"`
}

// InventoryDelta is inventory_delta.avsc.
type InventoryDelta struct {
	DeltaID       string    `avro:"delta_id"`
	SKU           string    `avro:"sku"`
	Kind          string    `avro:"kind"`
	Quantity      int64     `avro:"quantity"`
	OrderID       string    `avro:"order_id"`
	EventID       string    `avro:"event_id"`
	OccurredAt    time.Time `avro:"occurred_at"`
	CorrelationID string    `avro:"correlation_id"`
	Reverses      string    `avro:"reverses"`
	Provider      string    `avro:"provider"`
	ReceivedAt    time.Time `avro:"received_at"`
}

// InventoryMovement is inventory_movement.avsc.
type InventoryMovement struct {
	MovementID    string    `avro:"movement_id"`
	SKU           string    `avro:"sku"`
	Kind          string    `avro:"kind"`
	Status        string    `avro:"status"`
	Quantity      int64     `avro:"quantity"`
	StockAfter    int64     `avro:"stock_after"`
	Reason        string    `avro:"reason"`
	OrderID       string    `avro:"order_id"`
	OccurredAt    time.Time `avro:"occurred_at"`
	AppliedAt     time.Time `avro:"applied_at"`
	CorrelationID string    `avro:"correlation_id"`
	Provider      string    `avro:"provider"`
	ReceivedAt    time.Time `avro:"received_at"`
	ReservedAfter int64     `avro:"reserved_after"`
}

// WebhookReceipt is webhook_receipt.avsc.
type WebhookReceipt struct {
	DeliveryID string            `avro:"delivery_id"`
	Provider   string            `avro:"provider"`
	ReceivedAt time.Time         `avro:"received_at"`
	Headers    map[string]string `avro:"headers"`
	Body       []byte            `avro:"body"`
	EventType  string            `avro:"event_type"`
	// Event is nil for a delivery kept only as a receipt.
	Event *OrderEvent `avro:"event"`
	// Stock is nil for a delivery that is not an inventory webhook.
	Stock *StockSnapshot `avro:"stock"`
}

// StockSnapshot is stock_snapshot.avsc.
type StockSnapshot struct {
	SnapshotID    string    `avro:"snapshot_id"`
	Source        string    `avro:"source"`
	SKU           string    `avro:"sku"`
	ItemID        string    `avro:"item_id"`
	LocationID    string    `avro:"location_id"`
	Available     int64     `avro:"available"`
	ObservedAt    time.Time `avro:"observed_at"`
	ReceivedAt    time.Time `avro:"received_at"`
	CorrelationID string    `avro:"correlation_id"`
}

// WebhookOutcome is webhook_outcome.avsc.
type WebhookOutcome struct {
	OutcomeID     string    `avro:"outcome_id"`
	Provider      string    `avro:"provider"`
	DeliveryID    string    `avro:"delivery_id"`
	EventType     string    `avro:"event_type"`
	Outcome       string    `avro:"outcome"`
	Reason        string    `avro:"reason"`
	Status        int32     `avro:"status"`
	Size          int64     `avro:"size"`
	ReceivedAt    time.Time `avro:"received_at"`
	CorrelationID string    `avro:"correlation_id"`
}

// OrderApplied is order_applied.avsc.
type OrderApplied struct {
	Event       OrderEvent `avro:"event"`
	StatusAfter string     `avro:"status_after"`
	Transition  string     `avro:"transition"`
	Stale       bool       `avro:"stale"`
	AppliedAt   time.Time  `avro:"applied_at"`
}

// StockDrift is stock_drift.avsc.
type StockDrift struct {
	DriftID        string    `avro:"drift_id"`
	SKU            string    `avro:"sku"`
	SnapshotID     string    `avro:"snapshot_id"`
	Source         string    `avro:"source"`
	TruthAvailable int64     `avro:"truth_available"`
	RedisStock     int64     `avro:"redis_stock"`
	Reserved       int64     `avro:"reserved"`
	InFlight       int64     `avro:"in_flight"`
	Difference     int64     `avro:"difference"`
	Action         string    `avro:"action"`
	ObservedAt     time.Time `avro:"observed_at"`
	ReconciledAt   time.Time `avro:"reconciled_at"`
}

// PipelineMetric is pipeline_metric.avsc.
type PipelineMetric struct {
	MetricID        string    `avro:"metric_id"`
	Minute          time.Time `avro:"minute"`
	Stage           string    `avro:"stage"`
	Instance        string    `avro:"instance"`
	Records         int64     `avro:"records"`
	ErrorsTransient int64     `avro:"errors_transient"`
	ErrorsPermanent int64     `avro:"errors_permanent"`
	DeadLettered    int64     `avro:"dead_lettered"`
	LatencyP50Ms    float64   `avro:"latency_p50_ms"`
	LatencyP95Ms    float64   `avro:"latency_p95_ms"`
	LatencyP99Ms    float64   `avro:"latency_p99_ms"`
	Group           string    `avro:"group"`
	Topic           string    `avro:"topic"`
	Partition       int32     `avro:"partition"`
	Lag             int64     `avro:"lag"`
}
