package clickhouse

import (
	"fmt"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Strings reads the rest of rows as text, whatever the columns' types, and
// closes it: a value as fmt prints it, a time as "2006-01-02 15:04:05" in
// UTC. It is how an answer is shown to someone (the demo) or compared with
// the one expected (the tests).
func Strings(rows driver.Rows) ([][]string, error) {
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			switch x := reflect.ValueOf(v).Elem().Interface().(type) {
			case time.Time:
				row[i] = x.UTC().Format(time.DateTime)
			default:
				row[i] = fmt.Sprint(x)
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
