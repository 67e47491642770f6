package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/testserver"
)

// TestConfigFileEnvAndMetrics: a YAML file sets limits, an environment
// variable overrides one of them, and /healthz, /readyz and /metrics
// answer on the client port with the documented series.
func TestConfigFileEnvAndMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchboard.yaml")
	os.WriteFile(cfg, []byte("chat:\n  max_body_bytes: 1000\ngateway:\n  message_burst: 50\n"), 0o600)
	srv := testserver.Start(t, testserver.Options{
		Args: []string{"--config", cfg},
		Env:  []string{"SWITCHBOARD_CHAT_MAX_BODY_BYTES=10"}, // overrides the file
	})
	c, err := dial(srv.Addr(), testserver.Token(t, srv.DataDir(), "alice", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	c.send(map[string]any{"type": "send", "id": "1", "to": "bob", "body": "0123456789"})
	if f, err := c.read(5 * time.Second); err != nil || f.Type != "ack" {
		t.Fatalf("10-byte body: %+v %v", f, err)
	}
	c.send(map[string]any{"type": "send", "id": "2", "to": "bob", "body": "0123456789x"})
	if f, err := c.read(5 * time.Second); err != nil || f.Type != "error" || f.Code != "bad_request" {
		t.Fatalf("11-byte body over the env limit: %+v %v", f, err)
	}

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	if code, _ := get("/debug/pprof/"); code != 404 {
		t.Fatalf("/debug/pprof/ is served without pprof: true (%d)", code)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"switchboard_gateway_connections 1",
		"switchboard_messages_acked_total 1",
		`switchboard_gateway_upgrades_total{result="ok"} 1`,
		`switchboard_gateway_error_frames_total{code="bad_request"} 1`,
		"switchboard_gateway_ack_latency_seconds_count 1",
		"switchboard_store_commit_seconds_count",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "alice") {
		t.Error("/metrics mentions a user id")
	}
}
