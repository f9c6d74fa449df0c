// Package avro owns shopstream's contracts: the Avro schemas every stage
// writes and reads (the *.avsc files beside this file, embedded), their Go
// types, and the codec.
//
// Every message is Avro single-object encoded (0xC3 0x01, the writer schema's
// 8-byte little-endian CRC-64-AVRO fingerprint, then the binary body), so any
// reader can tell which schema wrote it without a registry. A reader decodes
// data written by an older or newer version of a schema by resolving the
// writer schema against its own; the schemas therefore evolve only by adding
// fields with defaults and enum symbols behind an enum default.
//
// This package imports no package of the project: every stage depends on it,
// and it depends on none of them. The Avro implementation is hamba/avro,
// which also gives canonical forms, fingerprints and schema resolution.
package avro

import (
	"bytes"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	hamba "github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/pkg/crc64"
)

//go:embed *.avsc history/*.avsc
var files embed.FS

// Order in which the schema files are parsed: a later file may name a type
// that an earlier one defines (movements reuse DeltaKind; a receipt carries an
// OrderEvent and a StockSnapshot, an OrderApplied its OrderEvent).
var schemaFiles = []struct {
	file   string
	goType reflect.Type
}{
	{"order_event.avsc", reflect.TypeOf(OrderEvent{})},
	{"inventory_delta.avsc", reflect.TypeOf(InventoryDelta{})},
	{"inventory_movement.avsc", reflect.TypeOf(InventoryMovement{})},
	{"stock_snapshot.avsc", reflect.TypeOf(StockSnapshot{})},
	{"webhook_receipt.avsc", reflect.TypeOf(WebhookReceipt{})},
	{"webhook_outcome.avsc", reflect.TypeOf(WebhookOutcome{})},
	{"order_applied.avsc", reflect.TypeOf(OrderApplied{})},
	{"stock_drift.avsc", reflect.TypeOf(StockDrift{})},
	{"pipeline_metric.avsc", reflect.TypeOf(PipelineMetric{})},
}

// magic is the single-object encoding marker, from the Avro specification;
// the fingerprint after it is CRC-64-AVRO of the schema's Parsing Canonical
// Form, little-endian.
var magic = [2]byte{0xC3, 0x01}

const headerLen = 10

var (
	// ErrNotSingleObject is returned by Unmarshal when the data does not start
	// with the single-object marker. Permanent: the bytes will not change.
	ErrNotSingleObject = errors.New("avro: not single-object encoded")
	// ErrUnknownSchema is returned by Unmarshal when the fingerprint names no
	// schema this binary knows. Permanent for this binary; a newer release of
	// the reader may know it.
	ErrUnknownSchema = errors.New("avro: unknown writer schema fingerprint")
)

// Schema is one known schema and its fingerprint.
type Schema struct {
	Name        string
	Fingerprint uint64
	Avro        hamba.Schema
}

// Registry knows shopstream's schemas, by Go type and by fingerprint.
type Registry struct {
	byType map[reflect.Type]*Schema
	byFP   map[uint64]*Schema

	mu       sync.Mutex
	resolved map[[2]uint64]hamba.Schema
}

var (
	defaultOnce sync.Once
	defaultReg  *Registry
	defaultErr  error
)

// Default returns the registry of the embedded schemas. It panics only if an
// embedded schema does not parse, which the package's tests rule out.
func Default() *Registry {
	defaultOnce.Do(func() {
		defaultReg, defaultErr = NewRegistry()
	})
	if defaultErr != nil {
		panic(defaultErr)
	}
	return defaultReg
}

// NewRegistry parses the embedded schemas.
func NewRegistry() (*Registry, error) {
	r := &Registry{
		byType:   map[reflect.Type]*Schema{},
		byFP:     map[uint64]*Schema{},
		resolved: map[[2]uint64]hamba.Schema{},
	}
	cache := &hamba.SchemaCache{}
	for _, f := range schemaFiles {
		text, err := files.ReadFile(f.file)
		if err != nil {
			return nil, err
		}
		s, err := r.add(string(text), cache)
		if err != nil {
			return nil, fmt.Errorf("avro: %s: %w", f.file, err)
		}
		r.byType[f.goType] = s
	}
	// Earlier versions of the schemas, so that what an older release wrote
	// (webhooks.raw keeps a week of receipts) stays readable after an
	// upgrade instead of being dead-lettered as unknown. Each file stands
	// alone (a cache of its own): its names must not replace today's.
	history, err := files.ReadDir("history")
	if err != nil {
		return nil, err
	}
	for _, f := range history {
		text, err := files.ReadFile("history/" + f.Name())
		if err != nil {
			return nil, err
		}
		if _, err := r.add(string(text), &hamba.SchemaCache{}); err != nil {
			return nil, fmt.Errorf("avro: history/%s: %w", f.Name(), err)
		}
	}
	return r, nil
}

// AddWriterSchema makes data written with another version of a known schema
// readable: an older release's schema, or a newer one's.
func (r *Registry) AddWriterSchema(text string) (*Schema, error) {
	return r.add(text, &hamba.SchemaCache{})
}

func (r *Registry) add(text string, cache *hamba.SchemaCache) (*Schema, error) {
	s, err := hamba.ParseWithCache(text, "", cache)
	if err != nil {
		return nil, err
	}
	pcf, err := CanonicalForm(s)
	if err != nil {
		return nil, err
	}
	named, ok := s.(hamba.NamedSchema)
	if !ok {
		return nil, errors.New("avro: top-level schema must be a named record")
	}
	h := crc64.New()
	h.Write([]byte(pcf))
	sch := &Schema{Name: named.FullName(), Fingerprint: h.Sum64(), Avro: s}
	r.byFP[sch.Fingerprint] = sch
	return sch, nil
}

// primitiveWithLogicalType matches a primitive that carries a logical type
// in hamba's canonical form.
var primitiveWithLogicalType = regexp.MustCompile(`\{"type":"(int|long|bytes|string)","logicalType":"[^"]*"(,"precision":\d+)?(,"scale":\d+)?\}`)

// CanonicalForm returns the schema's Parsing Canonical Form as the Avro
// specification defines it, the input of its fingerprint. hamba's canonical
// form keeps logicalType, which the specification strips ("keep only type,
// name, fields, symbols, items, values, size"); fingerprints from it match
// no other Avro implementation, so the logical types are reduced to their
// primitive here, and a schema this cannot reduce is refused.
func CanonicalForm(s hamba.Schema) (string, error) {
	pcf := primitiveWithLogicalType.ReplaceAllString(s.String(), `"$1"`)
	if strings.Contains(pcf, `"logicalType"`) {
		return "", errors.New("avro: a logical type outside int, long, bytes or string has no canonical form here")
	}
	return pcf, nil
}

// SchemaOf returns the schema that Marshal writes v with.
func (r *Registry) SchemaOf(v any) (*Schema, error) {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s, ok := r.byType[t]
	if !ok {
		return nil, fmt.Errorf("avro: no schema for Go type %v", t)
	}
	return s, nil
}

// Marshal single-object encodes v, a value or pointer of one of this
// package's record types.
func (r *Registry) Marshal(v any) ([]byte, error) {
	s, err := r.SchemaOf(v)
	if err != nil {
		return nil, err
	}
	// A pooled writer: ingest encodes a receipt of about 1 KiB per webhook,
	// and a fresh buffer for each showed up in its CPU profile.
	w := writers.Get().(*hamba.Writer)
	defer func() {
		// A writer that grew on a large body would keep its buffer for
		// every small record after it.
		if cap(w.Buffer()) <= 64<<10 {
			writers.Put(w)
		}
	}()
	w.Reset(nil)
	w.Error = nil // Reset keeps the error a failed encode left
	var header [headerLen]byte
	copy(header[:], magic[:])
	binary.LittleEndian.PutUint64(header[len(magic):], s.Fingerprint)
	_, _ = w.Write(header[:])
	w.WriteVal(s.Avro, v)
	if w.Error != nil {
		return nil, fmt.Errorf("avro: encode %s: %w", s.Name, w.Error)
	}
	return bytes.Clone(w.Buffer()), nil
}

var writers = sync.Pool{New: func() any { return hamba.NewWriter(nil, 1024) }}

// Fingerprint reads the writer schema fingerprint of single-object encoded data.
func Fingerprint(data []byte) (uint64, error) {
	if len(data) < headerLen || data[0] != magic[0] || data[1] != magic[1] {
		return 0, ErrNotSingleObject
	}
	return binary.LittleEndian.Uint64(data[2:headerLen]), nil
}

// Unmarshal decodes single-object encoded data into v, a pointer to one of
// this package's record types, resolving the writer's schema against v's.
func (r *Registry) Unmarshal(data []byte, v any) error {
	fp, err := Fingerprint(data)
	if err != nil {
		return err
	}
	writer, ok := r.byFP[fp]
	if !ok {
		return fmt.Errorf("%w %016x", ErrUnknownSchema, fp)
	}
	reader, err := r.SchemaOf(v)
	if err != nil {
		return err
	}
	schema := reader.Avro
	if writer.Fingerprint != reader.Fingerprint {
		if schema, err = r.resolve(reader, writer); err != nil {
			return err
		}
	}
	return decodeExact(schema, data[headerLen:], v, reader.Name)
}

// ErrMalformed is returned by Unmarshal when the body does not decode as the
// writer schema, is cut short, or has bytes left over. Permanent.
var ErrMalformed = errors.New("avro: malformed body")

// Limits for decoding untrusted bytes: a forged block count must not make the
// decoder allocate more than a message could hold (the fuzz target found a
// terabyte array). A webhook body is at most a few MB and an order has at
// most a few thousand lines.
var decodeLimits = hamba.Config{MaxByteSliceSize: 8 << 20, MaxSliceAllocSize: 100_000}.Freeze()

var readers = sync.Pool{New: func() any { return hamba.NewReader(nil, 0, hamba.WithReaderConfig(decodeLimits)) }}

// decodeExact decodes exactly one value from body. hamba.Unmarshal treats
// running out of bytes as success and leaves the rest of the value zero,
// which would let a truncated record through as valid, so the reader's
// error and its leftover bytes are checked here.
func decodeExact(schema hamba.Schema, body []byte, v any, name string) error {
	// A pooled reader: a fresh one was most of a decode's garbage (1.3 KiB
	// of 1.4), and the sink decodes hundreds of thousands a second.
	r := readers.Get().(*hamba.Reader)
	defer func() {
		r.Reset(nil) // keep no body alive from the pool
		readers.Put(r)
	}()
	r.Reset(body)
	r.Error = nil // Reset keeps the error a failed decode left
	r.ReadVal(schema, v)
	if r.Error != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, name, r.Error)
	}
	if r.Peek(); r.Error == nil {
		return fmt.Errorf("%w: %s: trailing bytes", ErrMalformed, name)
	}
	return nil
}

func (r *Registry) resolve(reader, writer *Schema) (hamba.Schema, error) {
	key := [2]uint64{reader.Fingerprint, writer.Fingerprint}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.resolved[key]; ok {
		return s, nil
	}
	s, err := hamba.NewSchemaCompatibility().Resolve(reader.Avro, writer.Avro)
	if err != nil {
		return nil, fmt.Errorf("avro: %s cannot read data written as %s (%016x): %w",
			reader.Name, writer.Name, writer.Fingerprint, err)
	}
	r.resolved[key] = s
	return s, nil
}
