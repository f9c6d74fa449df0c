package stock

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/testenv"
)

func TestCatalogMapsItemsToSKUs(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	c := NewCatalog(rdb, testenv.Namespace(t))
	if err := c.Put(ctx, []Item{{"shopify", "271878346596884015", "SKU-A"}, {"webflow", "5bfedb42", "SKU-A"}, {"shopify", "1", "SKU-B"}}); err != nil {
		t.Fatal(err)
	}
	// A reload replaces what an item was.
	if err := c.Put(ctx, []Item{{"shopify", "1", "SKU-C"}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.SKUs(ctx, []Item{{Source: "shopify", ItemID: "271878346596884015"}, {Source: "webflow", ItemID: "5bfedb42"},
		{Source: "shopify", ItemID: "1"}, {Source: "shopify", ItemID: "5bfedb42"}, {Source: "stripe", ItemID: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"SKU-A", "SKU-A", "SKU-C", "", ""}; !reflect.DeepEqual(got, want) {
		t.Fatalf("SKUs %q, want %q", got, want)
	}

	gone := NewCatalog(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}), "")
	if _, err := gone.SKUs(ctx, []Item{{Source: "shopify", ItemID: "1"}}); err == nil {
		t.Fatal("a lookup without Redis succeeded")
	}
}

func TestReadCatalogCSV(t *testing.T) {
	items, err := ReadCatalogCSV(strings.NewReader("title,SKU,source,item_id\n\"Hoodie, red\",SKU-A,shopify, 271878346596884015\nMug,SKU-B,webflow,5bfedb42\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Item{{"shopify", "271878346596884015", "SKU-A"}, {"webflow", "5bfedb42", "SKU-B"}}; !reflect.DeepEqual(items, want) {
		t.Fatalf("items %+v", items)
	}
	for name, tt := range map[string]struct{ file, err string }{
		"no sku column":    {"source,item_id\nshopify,1\n", `no "sku" column`},
		"empty sku":        {"source,item_id,sku\nshopify,1,SKU-A\nshopify,2,\n", "line 3: empty sku"},
		"brace in sku":     {"source,item_id,sku\nshopify,1,{A}\n", "line 2: sku"},
		"brace in source":  {"source,item_id,sku\n{shopify},1,A\n", "line 2: source"},
		"no item id":       {"source,item_id,sku\nshopify,,A\n", "line 2: source and item_id are required"},
		"one item two SKU": {"source,item_id,sku\nshopify,1,A\nshopify,1,B\n", "line 3: shopify item 1 is both A and B"},
		"bad quoting":      {"source,item_id,sku\nshopify,\"1,A\n", "catalog:"},
		"empty file":       {"", "header"},
	} {
		if _, err := ReadCatalogCSV(strings.NewReader(tt.file)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: err %v, want one saying %q", name, err, tt.err)
		}
	}
}
