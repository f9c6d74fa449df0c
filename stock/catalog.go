package stock

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Catalog says which SKU a source's own item id is. Storefronts name the
// item whose stock changed by their own id: a Shopify InventoryLevel names
// an inventory item, which reaches its SKU only through the variant that
// has it, and a Webflow inventory change names a SKU item by its database
// id. Stock is kept per SKU, so every snapshot is named by SKU before it is
// compared with Redis. The merchant exports the mapping from the storefront
// (Shopify's productVariants with sku and inventoryItem id, Webflow's SKU
// items with their sku field) and loads it with `shopstream catalog load`.
//
// Each source is one hash under its own hash tag, <prefix>catalog:{source},
// item id to SKU: one slot in a Redis Cluster, written and read in
// pipelined round trips.
type Catalog struct {
	rdb    redis.Cmdable
	prefix string
}

// NewCatalog returns the catalog whose keys start with prefix.
func NewCatalog(rdb redis.Cmdable, prefix string) *Catalog {
	return &Catalog{rdb: rdb, prefix: prefix}
}

// Item is a source's item, and the SKU it is when it is known.
type Item struct {
	Source, ItemID, SKU string
}

func (c *Catalog) key(source string) string { return c.prefix + "catalog:{" + source + "}" }

// Put records items' SKUs, replacing what an item had.
func (c *Catalog) Put(ctx context.Context, items []Item) error {
	bySource := map[string][]any{}
	for _, it := range items {
		bySource[it.Source] = append(bySource[it.Source], it.ItemID, it.SKU)
	}
	pipe := c.rdb.Pipeline()
	for source, pairs := range bySource {
		pipe.HSet(ctx, c.key(source), pairs...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("stock: catalog: put %d items: %w", len(items), err)
	}
	return nil
}

// SKUs returns the SKU of each item, "" for an item the catalog does not
// know, in one round trip.
func (c *Catalog) SKUs(ctx context.Context, items []Item) ([]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(items))
	for i, it := range items {
		cmds[i] = pipe.HGet(ctx, c.key(it.Source), it.ItemID)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("stock: catalog: look up %d items: %w", len(items), err)
	}
	skus := make([]string, len(items))
	for i, cmd := range cmds {
		sku, err := cmd.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("stock: catalog: look up %s item %s: %w", items[i].Source, items[i].ItemID, err)
		}
		skus[i] = sku
	}
	return skus, nil
}

// ReadCatalogCSV reads a catalog file: a header naming the columns source,
// item_id and sku (in any order; other columns are ignored), then one item
// a row. Every row is checked before any is returned, so that a file with
// a bad row loads nothing; an error names the row.
func ReadCatalogCSV(r io.Reader) ([]Item, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("catalog: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, want := range []string{"source", "item_id", "sku"} {
		if _, ok := col[want]; !ok {
			return nil, fmt.Errorf("catalog: the header has no %q column (want source,item_id,sku)", want)
		}
	}
	var items []Item
	seen := map[[2]string]string{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return items, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		field := func(name string) string {
			if i := col[name]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		it := Item{Source: field("source"), ItemID: field("item_id"), SKU: field("sku")}
		if it.Source == "" || it.ItemID == "" {
			return nil, fmt.Errorf("catalog: line %d: source and item_id are required", line)
		}
		if strings.ContainsAny(it.Source, "{}") {
			return nil, fmt.Errorf("catalog: line %d: source %q contains a brace", line, it.Source)
		}
		if err := ValidSKU(it.SKU); err != nil {
			return nil, fmt.Errorf("catalog: line %d: %w", line, err)
		}
		k := [2]string{it.Source, it.ItemID}
		if prev, dup := seen[k]; dup && prev != it.SKU {
			return nil, fmt.Errorf("catalog: line %d: %s item %s is both %s and %s", line, it.Source, it.ItemID, prev, it.SKU)
		}
		seen[k] = it.SKU
		items = append(items, it)
	}
}
