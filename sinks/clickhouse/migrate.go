package clickhouse

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaConfig is the one place where the deployment shape of the schema is
// decided: a single server, or a cluster with replicated tables.
type SchemaConfig struct {
	// DB is the database. Default "shopstream" (DefaultDB).
	DB string
	// Cluster, when set, creates every table and view ON CLUSTER with a
	// Replicated engine (paths /clickhouse/tables/{shard}/<db>.<table>,
	// replica {replica}, from the servers' macros). Default "": one server.
	Cluster string
}

// DefaultDB is the database when none is configured.
const DefaultDB = "shopstream"

func (c *SchemaConfig) setDefaults() {
	if c.DB == "" {
		c.DB = DefaultDB
	}
}

func (c SchemaConfig) onCluster() string {
	if c.Cluster == "" {
		return ""
	}
	return "ON CLUSTER " + c.Cluster
}

// replacing is the engine of a table whose rows may be written twice.
func (c SchemaConfig) replacing(table, version string) string {
	if c.Cluster == "" {
		return "ReplacingMergeTree(" + version + ")"
	}
	return fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s.%s', '{replica}', %s)", c.DB, table, version)
}

// Migration is one numbered file of migrations/.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string
}

var migrationName = regexp.MustCompile(`^(\d+)_([a-z0-9_]+)\.sql$`)

// Migrations renders the embedded migrations for cfg, in order.
func Migrations(cfg SchemaConfig) ([]Migration, error) {
	cfg.setDefaults()
	funcs := template.FuncMap{"replacing": cfg.replacing}
	data := struct{ DB, OnCluster string }{cfg.DB, cfg.onCluster()}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("clickhouse: migration file %q is not NNN_name.sql", e.Name())
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		text, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(e.Name()).Funcs(funcs).Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %s: %w", e.Name(), err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("clickhouse: %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: uint32(v), Name: m[2], Statements: splitStatements(buf.String())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("clickhouse: two migrations numbered %d", out[i].Version)
		}
	}
	return out, nil
}

// splitStatements splits a file at semicolons that end a line; comment
// lines are dropped.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Migrate creates the database and applies the migrations not yet recorded
// in its schema_migrations table, in order, recording each. Every statement
// is idempotent (IF NOT EXISTS), so a migration interrupted half way is
// safe to run again. It returns the migrations it applied.
func Migrate(ctx context.Context, conn driver.Conn, cfg SchemaConfig) ([]Migration, error) {
	cfg.setDefaults()
	migrations, err := Migrations(cfg)
	if err != nil {
		return nil, err
	}
	for _, stmt := range []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s %s", cfg.DB, cfg.onCluster()),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.schema_migrations %s (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = %s ORDER BY version",
			cfg.DB, cfg.onCluster(), cfg.replacing("schema_migrations", "applied_at")),
	} {
		if err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
	}
	applied := map[uint32]bool{}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT version FROM %s.schema_migrations FINAL", cfg.DB))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		for _, stmt := range m.Statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return done, fmt.Errorf("clickhouse: migration %03d_%s: %w", m.Version, m.Name, err)
			}
		}
		if err := record(ctx, conn, cfg.DB, m); err != nil {
			return done, fmt.Errorf("clickhouse: record migration %d: %w", m.Version, err)
		}
		done = append(done, m)
	}
	return done, nil
}

// record inserts m into schema_migrations through the batch API: an INSERT
// with VALUES through Exec waits forever on ClickHouse 18.16.
func record(ctx context.Context, conn driver.Conn, db string, m Migration) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (version, name)")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Append(m.Version, m.Name); err != nil {
		return err
	}
	return b.Send()
}
