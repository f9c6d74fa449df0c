package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
)

// privateKafka is a broker of the test's own, started by the stack script
// from the jars `make up` fetched, so the test can crash it without
// disturbing the tests that share the stack.
type privateKafka struct {
	t    *testing.T
	env  []string
	dir  string
	addr string
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func startPrivateKafka(t *testing.T) *privateKafka {
	stack := os.Getenv("SHOPSTREAM_STACK_DIR")
	if stack == "" {
		stack = "../.stack"
	}
	libs, _ := filepath.Abs(filepath.Join(stack, "kafka", "libs"))
	if _, err := os.Stat(filepath.Join(libs, ".complete")); err != nil {
		msg := "no Kafka jars at " + libs + "; run make up"
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	port, controller := freePort(t), freePort(t)
	k := &privateKafka{t: t, dir: t.TempDir(), addr: "127.0.0.1:" + port}
	k.env = append(os.Environ(), "SHOPSTREAM_STACK_DIR="+k.dir, "SHOPSTREAM_KAFKA_PORT="+port,
		"SHOPSTREAM_KAFKA_CONTROLLER_PORT="+controller, "SHOPSTREAM_KAFKA_LIBS="+libs, "SHOPSTREAM_KAFKA_HEAP=512m")
	k.stack("up", "kafka")
	t.Cleanup(func() { k.stack("down", "kafka") })
	return k
}

func (k *privateKafka) stack(args ...string) {
	k.t.Helper()
	cmd := exec.Command("../deploy/local/stack.sh", args...)
	cmd.Env = k.env
	if out, err := cmd.CombinedOutput(); err != nil {
		k.t.Fatalf("stack.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// crash kills the broker as a power cut would kill its process.
func (k *privateKafka) crash() {
	k.t.Helper()
	b, err := os.ReadFile(filepath.Join(k.dir, "pids", "kafka.pid"))
	if err != nil {
		k.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		k.t.Fatal(err)
	}
}

// The broker dies in the middle of a burst. Ingest answers 503 with
// Retry-After instead of 2xx while it is gone, the processors stall and
// start new sessions instead of ending, and once the broker is back and the
// provider has retried, every order is applied exactly once.
func TestBrokerCrashMidBurstLosesNothing(t *testing.T) {
	k := startPrivateKafka(t)
	p := newPipelineOn(t, services{brokers: []string{k.addr}})
	const n = 120
	deliveries := p.burstBeforeCrash("B", n)
	k.crash()
	// While the broker is gone nothing may be acknowledged.
	var mu sync.Mutex
	var retry []delivery
	var wg sync.WaitGroup
	for _, d := range deliveries[n/3 : n/3+8] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, answer := p.send(d)
			mu.Lock()
			defer mu.Unlock()
			retry = append(retry, d)
			if status != 503 || answer != "unavailable" {
				t.Errorf("delivery %s while the broker is down: %d %s, want 503 unavailable", d.id, status, answer)
			}
		}()
	}
	wg.Wait()
	k.stack("up", "kafka")
	retry = append(retry, deliveries[n/3+8:]...)
	p.retryUntilAccepted(retry, 2*time.Minute)
	select {
	case <-p.exited:
		t.Fatalf("shopstream run ended during the outage:\n%s", p.output())
	default:
	}
	p.settle(n + 1)
	if got := p.stock("B"); got != 1000-n {
		t.Fatalf("stock %d, want %d", got, 1000-n)
	}
}
