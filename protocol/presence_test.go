package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestAppendPresence(t *testing.T) {
	for _, tc := range []struct {
		name        string
		user        string
		online      bool
		hasOnline   bool
		lastSeen    int64
		hasLastSeen bool
		want        map[string]any
	}{
		{"Both", "bob", true, true, 1764170000123, true,
			map[string]any{"type": "presence", "user": "bob", "online": true, "last_seen": float64(1764170000123)}},
		{"Offline", "bob", false, true, 1, true,
			map[string]any{"type": "presence", "user": "bob", "online": false, "last_seen": float64(1)}},
		{"OnlineOnly", "bob", true, true, 99, false,
			map[string]any{"type": "presence", "user": "bob", "online": true}},
		{"LastSeenOnly", "bob", true, false, 42, true,
			map[string]any{"type": "presence", "user": "bob", "last_seen": float64(42)}},
		{"Neither", "bob", true, false, 42, false,
			map[string]any{"type": "presence", "user": "bob"}},
		{"EscapedUser", "b\"o\\b\n\x00é\xff", false, true, 0, false,
			map[string]any{"type": "presence", "user": "b\"o\\b\n\x00é\ufffd", "online": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := AppendPresence([]byte("prefix"), tc.user, tc.online, tc.hasOnline, tc.lastSeen, tc.hasLastSeen)
			if string(frame[:6]) != "prefix" {
				t.Fatalf("dst overwritten: %q", frame)
			}
			var got map[string]any
			if err := json.Unmarshal(frame[6:], &got); err != nil {
				t.Fatalf("invalid JSON %q: %v", frame[6:], err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v (frame %s)", got, tc.want, frame[6:])
			}
		})
	}
}

func TestAppendPresenceAllocs(t *testing.T) {
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendPresence(buf[:0], "user-12345", true, true, 1764170000123, true)
	}); n != 0 {
		t.Fatalf("AppendPresence allocates %.0f times with room in dst", n)
	}
}

func BenchmarkAppendPresence(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPresence(buf[:0], "user-12345", true, true, 1764170000123, true)
	}
	b.SetBytes(int64(len(buf)))
}
