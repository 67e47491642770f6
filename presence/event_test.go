package presence_test

import (
	"errors"
	"testing"

	"github.com/switchboard/switchboard/presence"
)

func TestEventBinary(t *testing.T) {
	for _, ev := range []presence.Event{
		{Kind: presence.Connected, User: "alice", Device: "", Node: "gw-1", Conn: 1, TS: 1764170000123},
		{Kind: presence.Active, User: "zoë", Device: "phone\x00", Node: "", Conn: 1<<64 - 1, TS: -5},
		{Kind: presence.Inactive, User: "b", Device: "d", Node: "n", Conn: 0, TS: 0},
		{Kind: presence.Disconnected, User: string(make([]byte, 300)), Conn: 300, TS: 1 << 62},
	} {
		b := ev.AppendBinary([]byte("x"))
		got, err := presence.DecodeEvent(b[1:])
		if err != nil || got != ev {
			t.Fatalf("round trip of %+v: %+v, %v", ev, got, err)
		}
		// Every strict prefix is refused, and so is a trailing byte.
		for n := range len(b) - 1 {
			if _, err := presence.DecodeEvent(b[1 : 1+n]); !errors.Is(err, presence.ErrBadEvent) {
				t.Fatalf("DecodeEvent of %d of %d bytes: %v", n, len(b)-1, err)
			}
		}
		if _, err := presence.DecodeEvent(append(b[1:], 0)); !errors.Is(err, presence.ErrBadEvent) {
			t.Fatalf("DecodeEvent with a trailing byte: %v", err)
		}
	}
	for _, bad := range [][]byte{{2, 1, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 0, 0}, {1, 6, 0, 0, 0, 0, 0}} {
		if _, err := presence.DecodeEvent(bad); !errors.Is(err, presence.ErrBadEvent) {
			t.Fatalf("DecodeEvent(%x) = %v", bad, err)
		}
	}
	ev := presence.Event{Kind: presence.Active, User: "user-12345", Device: "phone", Node: "gw-1", Conn: 123456, TS: 1764170000123}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = ev.AppendBinary(buf[:0]) }); n != 0 {
		t.Fatalf("AppendBinary allocates %.0f times", n)
	}
}

// FuzzDecodeEvent: DecodeEvent never panics, and what it accepts encodes
// back to an event that decodes the same.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(presence.Event{Kind: presence.Active, User: "alice", Node: "gw", Conn: 9, TS: 100}.AppendBinary(nil))
	f.Add([]byte{1, 4, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := presence.DecodeEvent(b)
		if err != nil {
			return
		}
		again, err := presence.DecodeEvent(ev.AppendBinary(nil))
		if err != nil || again != ev {
			t.Fatalf("%x decoded to %+v, which re-decodes to %+v, %v", b, ev, again, err)
		}
	})
}

func TestVisibilityNames(t *testing.T) {
	for _, v := range []presence.Visibility{presence.Everyone, presence.Contacts, presence.Nobody} {
		got, ok := presence.ParseVisibility(v.String())
		if !ok || got != v {
			t.Fatalf("ParseVisibility(%q) = %v, %v", v.String(), got, ok)
		}
	}
	for _, bad := range []string{"", "Everyone", "all", "none"} {
		if _, ok := presence.ParseVisibility(bad); ok {
			t.Fatalf("ParseVisibility(%q) accepted", bad)
		}
	}
	if presence.Visibility(3).Valid() || presence.Visibility(3).String() != "invalid" {
		t.Fatal("Visibility(3) taken as valid")
	}
}
