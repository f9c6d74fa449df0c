package providertest

import "time"

// Level is what one location can still sell of one storefront item, as an
// inventory webhook tells it.
type Level struct {
	// ShopifyItem is the Shopify inventory item's id, WebflowItem the
	// Webflow SKU item's; the catalog maps each to a SKU.
	ShopifyItem int64
	WebflowItem string
	Available   int64
	// At is when the storefront's stock changed.
	At time.Time
}

// Shopify is an InventoryLevel resource, the body of inventory_levels/update,
// at location 24826418.
func (l Level) Shopify() []byte {
	return marshal(map[string]any{"inventory_item_id": l.ShopifyItem, "location_id": 24826418, "available": l.Available,
		"updated_at": l.At.Format(time.RFC3339Nano), "admin_graphql_api_id": "gid://shopify/InventoryLevel/24826418"})
}

// Webflow is an ecomm_inventory_changed trigger of a finite inventory.
func (l Level) Webflow() []byte {
	return marshal(map[string]any{"triggerType": "ecomm_inventory_changed",
		"payload": map[string]any{"id": l.WebflowItem, "quantity": l.Available, "inventoryType": "finite"}})
}
