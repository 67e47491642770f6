package protocol

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeSend(t *testing.T) {
	var d Decoder
	var r Request
	in := []byte(` { "type":"send", "id":"c1","to":"bob","body":"h\u00e9llo \"x\"\n\ud83d\ude00", "extra":{"a":[1,2.5e3,true,null,"s"]} } `)
	if err := d.Decode(in, &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeSend || string(r.ID) != "c1" || string(r.To) != "bob" {
		t.Fatalf("got %+v", r)
	}
	if want := "héllo \"x\"\n😀"; string(r.Body) != want {
		t.Fatalf("body %q, want %q", r.Body, want)
	}
}

func TestDecodeReceiptAndSync(t *testing.T) {
	var d Decoder
	var r Request
	if err := d.Decode([]byte(`{"type":"receipt","status":"read","msg_ids":["a","b\\c"]}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeReceipt || string(r.Status) != "read" || len(r.MsgIDs) != 2 ||
		string(r.MsgIDs[0]) != "a" || string(r.MsgIDs[1]) != `b\c` {
		t.Fatalf("got %+v", r)
	}
	if err := d.Decode([]byte(`{"type":"sync","after":18446744073709551615}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != TypeSync || !r.HasAfter || r.After != 1<<64-1 || len(r.MsgIDs) != 0 {
		t.Fatalf("got %+v", r)
	}
	if err := d.Decode([]byte(`{"type":"bogus"}`), &r); err != nil || r.Type != TypeUnknown || string(r.TypeName) != "bogus" {
		t.Fatalf("unknown type: %v %+v", err, r)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]*Error{
		``:                               errNotObject,
		`[]`:                             errNotObject,
		`{"type":"send"`:                 errSyntax,
		`{"type":"send"} x`:              errTrailing,
		`{"type":1}`:                     errTypeType,
		`{"type":null}`:                  errTypeType,
		`{"id":["x"]}`:                   errTypeID,
		`{"to":{}}`:                      errTypeTo,
		`{"body":true}`:                  errTypeBody,
		`{"status":2}`:                   errTypeStatus,
		`{"msg_ids":"a"}`:                errTypeMsgIDs,
		`{"msg_ids":[1]}`:                errTypeMsgIDs,
		`{"after":-1}`:                   errTypeAfter,
		`{"after":1.5}`:                  errTypeAfter,
		`{"after":01}`:                   errTypeAfter,
		`{"after":18446744073709551616}`: errTypeAfter,
		`{"body":"a` + "\x01" + `"}`:     errControlChar,
		`{"body":"\x"}`:                  errEscape,
		`{"body":"\u12"}`:                errEscape,
		`{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`: errTooDeep,
		`{"msg_ids":[` + strings.Repeat(`"a",`, 256) + `"a"]}`:            errTooManyIDs,
		`{"type":"profile.set","about":1}`:                                errTypeAbout,
		`{"type":"profile.set","photo":null}`:                             errTypePhoto,
		`{"type":"group.icon","icon":["A"]}`:                              errTypeIcon,
		`{"type":"profile.set","name":false}`:                             errTypeName,
		`{"x":tru}`:                                                       errSyntax,
		`{"x":-}`:                                                         errSyntax,
		`{"type":"send",}`:                                                errSyntax,
	}
	var d Decoder
	var r Request
	for in, want := range cases {
		if got := d.Decode([]byte(in), &r); got != want {
			t.Errorf("Decode(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	var d Decoder
	var r Request
	in := []byte(`{"type":"send","id":"c1","to":"bob","body":"hi \u00e9 there"}`)
	rec := []byte(`{"type":"receipt","status":"read","msg_ids":["01J","01K","01L"]}`)
	prof := []byte(`{"type":"profile.set","id":"p","name":"Al","about":"line\nline","photo":"01J"}`)
	d.Decode(in, &r) // warm the scratch buffer
	if n := testing.AllocsPerRun(100, func() {
		d.Decode(in, &r)
		d.Decode(rec, &r)
		d.Decode(prof, &r)
	}); n != 0 {
		t.Fatalf("Decode allocates %v times per run", n)
	}
}

func TestEncodersProduceValidJSON(t *testing.T) {
	frames := [][]byte{
		AppendAck(nil, "c\"1", "01ABC", 17),
		AppendAck(nil, []byte("c1"), "", 0),
		AppendMsg(nil, 5, "01ABC", "alice", "bob", "line1\nline2 \x00 \"q\" é \xff", 42),
		AppendReceipt(nil, 6, "read", []string{"a", "b"}, "bob", 43),
		AppendReceipt(nil, 7, "delivered", nil, "bob", 43),
		AppendSynced(nil, "", 9),
		AppendSynced(nil, "s1", 0),
		AppendError(nil, "", CodeBadRequest, "malformed JSON"),
		AppendError(nil, []byte("x"), CodeRateLimited, "slow down"),
	}
	for _, f := range frames {
		if !utf8.Valid(f) {
			t.Errorf("invalid UTF-8: %q", f)
		}
		var m map[string]any
		if err := json.Unmarshal(f, &m); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	var m struct{ Body string }
	json.Unmarshal(frames[2], &m)
	if m.Body != "line1\nline2 \x00 \"q\" é \ufffd" {
		t.Errorf("body round trip: %q", m.Body)
	}
}

func TestEncodeAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	body := []byte("hello there")
	if n := testing.AllocsPerRun(100, func() {
		b := AppendMsg(buf[:0], 5, "01ABC", "alice", "bob", body, 42)
		b = AppendAck(b, body, "01ABC", 1)
		_ = b
	}); n != 0 {
		t.Fatalf("encoders allocate %v times per run", n)
	}
}

// The decoder and encoding/json must agree on every string the encoder can
// produce and the decoder accepts.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"type":"send","id":"c1","to":"bob","body":"hello"}`,
		`{"type":"receipt","status":"delivered","msg_ids":["a","b"]}`,
		`{"type":"sync","after":0}`,
		`{"type":"send","body":"\ud83d\ude00 \u00e9 \\ \" \/ \b\f\n\r\t"}`,
		`{"x":{"y":[1,-2.5e+3,true,false,null,{"z":"w"}]},"type":"sync"}`,
		`{"type":"send","body":"\ud800"}`,
		`{"type":"profile.set","id":"p1","name":"Al","about":"a\nb","photo":""}`,
		`{"type":"profile.get","id":"p2","users":["bob","carol"]}`,
		`{"type":"group.icon","id":"i1","group":"01JDQ5A0000000000000000000","icon":"0123456789ABCDEFGHJKMNPQRS"}`,
		`[1]`, `{`, `{"a"}`, `{"after":00}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var d Decoder
	f.Fuzz(func(t *testing.T, in []byte) {
		if !utf8.Valid(in) {
			return // the gateway refuses invalid UTF-8 before decoding
		}
		var r Request
		err := d.Decode(in, &r)
		var std map[string]json.RawMessage
		stdErr := json.Unmarshal(in, &std)
		if err == nil && stdErr != nil {
			t.Fatalf("Decode accepted %q, encoding/json: %v", in, stdErr)
		}
		if err != nil {
			return
		}
		for key, dst := range map[string][]byte{"id": r.ID, "to": r.To, "body": r.Body, "type": r.TypeName,
			"name": r.Name, "about": r.About, "photo": r.Photo, "icon": r.Icon} {
			raw, ok := std[key]
			if !ok {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				continue // duplicate keys: encoding/json keeps the last, and so do we
			}
			if s != string(dst) {
				t.Fatalf("%s: Decode %q, encoding/json %q (input %q)", key, dst, s, in)
			}
			// What we decode, we must encode back to the same string.
			var back string
			if err := json.Unmarshal(AppendString(nil, dst), &back); err != nil || back != s {
				t.Fatalf("re-encode of %q: %q, %v", s, back, err)
			}
		}
	})
}

func BenchmarkDecodeSend(b *testing.B) {
	var d Decoder
	var r Request
	in := []byte(`{"type":"send","id":"0f8c2a1e-5b8e-4f43","to":"user-12345","body":"Hey, are we still on for lunch tomorrow at noon?"}`)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(in, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendMsg(b *testing.B) {
	buf := make([]byte, 0, 512)
	body := []byte("Hey, are we still on for lunch tomorrow at noon?")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMsg(buf[:0], 123456, "01JDQ4ZJ0Y8H2N3K5M6P7Q8R9S", "user-1", "user-12345", body, 1732650000000)
	}
	b.SetBytes(int64(len(buf)))
}

func TestDecodeAttachment(t *testing.T) {
	var d Decoder
	var r Request
	in := `{"type":"send","id":"1","to":"bob","body":"","attachment":{"kind":"image","asset_id":"0123456789ABCDEFGHJKMNPQRS","size":{"w":[1,2]}}}`
	if e := d.Decode([]byte(in), &r); e != nil {
		t.Fatal(e)
	}
	if !r.HasAttachment || string(r.AssetID) != "0123456789ABCDEFGHJKMNPQRS" {
		t.Fatalf("attachment: %v %q", r.HasAttachment, r.AssetID)
	}
	for in, want := range map[string]string{
		`{"type":"send","attachment":"x"}`:            `"attachment" must be an object`,
		`{"type":"send","attachment":{"asset_id":1}}`: `"attachment"."asset_id" must be a string`,
		`{"type":"send","attachment":{"asset_id":"a"`: "malformed JSON",
	} {
		if e := d.Decode([]byte(in), &r); e == nil || e.Message != want {
			t.Errorf("%s: %v, want %s", in, e, want)
		}
	}
}

func TestDecodeProfileAndIcon(t *testing.T) {
	var d Decoder
	var r Request
	in := `{"type":"profile.set","id":"p1","name":"Al \u00e9","about":"two\nlines","photo":"0123456789ABCDEFGHJKMNPQRS"}`
	if e := d.Decode([]byte(in), &r); e != nil {
		t.Fatal(e)
	}
	if r.Type != TypeProfileSet || !r.HasName || string(r.Name) != "Al é" || !r.HasAbout || string(r.About) != "two\nlines" ||
		!r.HasPhoto || string(r.Photo) != "0123456789ABCDEFGHJKMNPQRS" || r.HasIcon {
		t.Fatalf("profile.set: %+v", r)
	}
	// An empty photo is there (it removes the photo); one not sent is not.
	if e := d.Decode([]byte(`{"type":"profile.set","id":"p2","photo":""}`), &r); e != nil || !r.HasPhoto || len(r.Photo) != 0 || r.HasName || r.HasAbout {
		t.Fatalf("profile.set photo \"\": %v %+v", e, r)
	}
	if e := d.Decode([]byte(`{"type":"profile.get","id":"p3","users":["bob","carol"]}`), &r); e != nil ||
		r.Type != TypeProfileGet || len(r.Users) != 2 || string(r.Users[1]) != "carol" || r.HasPhoto {
		t.Fatalf("profile.get: %v %+v", e, r)
	}
	if e := d.Decode([]byte(`{"type":"group.icon","id":"i","group":"G","icon":""}`), &r); e != nil ||
		r.Type != TypeGroupIcon || !r.HasIcon || len(r.Icon) != 0 || string(r.Group) != "G" {
		t.Fatalf("group.icon: %v %+v", e, r)
	}
}
