package config

import (
	"errors"
	"flag"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Name    string         `yaml:"name" help:"node name"`
	Debug   bool           `yaml:"debug"`
	Workers int            `yaml:"workers"`
	Small   int8           `yaml:"small"`
	Port    uint16         `yaml:"port"`
	Ratio   float64        `yaml:"ratio"`
	Timeout time.Duration  `yaml:"timeout"`
	Peers   []string       `yaml:"peers"`
	Level   slog.Level     `yaml:"log_level"`
	Listen  netip.AddrPort `yaml:"listen"`
	Gateway gatewayConfig  `yaml:"gateway"`
	Store   *storeConfig   `yaml:"store"`
	Base    baseConfig     `yaml:",inline"`
	NoTag   int
	Logger  *slog.Logger // opaque: not a key
	Skipped string       `yaml:"-"`
	hidden  string       // unexported: not a key
}

type gatewayConfig struct {
	Addr            string        `yaml:"addr" help:"listen address"`
	MaxMessageBytes int           `yaml:"max_message_bytes" help:"largest client message"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	TLS             struct {
		Cert string `yaml:"cert"`
	} `yaml:"tls"`
}

type storeConfig struct {
	Dir  string `yaml:"dir"`
	Sync bool   `yaml:"sync"`
}

type baseConfig struct {
	Region string `yaml:"region"`
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
name: from-file
workers: 4
timeout: 10s
gateway:
  addr: ":1000"
  max_message_bytes: 1024
`)
	cfg := testConfig{Ratio: 0.5, Workers: 1} // what the caller had: lowest
	env := []string{
		"PATH=/bin",
		"SWITCHBOARD_WORKERS=8",
		"SWITCHBOARD_GATEWAY_ADDR=:2000",
	}
	if err := Load(&cfg, file, env, "SWITCHBOARD"); err != nil {
		t.Fatal(err)
	}
	// Flags last.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("gateway.addr", "", "")
	fs.String("name", "", "")
	if err := fs.Parse([]string{"-gateway.addr=:3000"}); err != nil {
		t.Fatal(err)
	}
	var err error
	fs.Visit(func(f *flag.Flag) { err = errors.Join(err, Set(&cfg, f.Name, f.Value.String())) })
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"untouched field keeps caller value", cfg.Ratio, 0.5},
		{"file over caller", cfg.Name, "from-file"},
		{"file only", cfg.Timeout, 10 * time.Second},
		{"file only nested", cfg.Gateway.MaxMessageBytes, 1024},
		{"env over file", cfg.Workers, 8},
		{"flag over env", cfg.Gateway.Addr, ":3000"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestLoadYAML(t *testing.T) {
	file := writeFile(t, `
name: "quoted"
debug: true
workers: -3
small: 127
port: 65535
ratio: 1.25
timeout: 1m30s
peers: [a, "b c"]
log_level: warn
listen: "127.0.0.1:8080"
gateway:
  addr: ":443"
  idle_timeout: "45s"
  tls:
    cert: /etc/cert.pem
store:
  dir: /var/lib/sb
region: eu-west
notag: 9
`)
	var cfg testConfig
	if err := Load(&cfg, file, nil, "SB"); err != nil {
		t.Fatal(err)
	}
	want := testConfig{
		Name: "quoted", Debug: true, Workers: -3, Small: 127, Port: 65535, Ratio: 1.25,
		Timeout: 90 * time.Second, Peers: []string{"a", "b c"}, Level: slog.LevelWarn,
		Listen: netip.MustParseAddrPort("127.0.0.1:8080"),
		Store:  &storeConfig{Dir: "/var/lib/sb"},
		Base:   baseConfig{Region: "eu-west"},
		NoTag:  9,
	}
	want.Gateway.Addr = ":443"
	want.Gateway.IdleTimeout = 45 * time.Second
	want.Gateway.TLS.Cert = "/etc/cert.pem"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestLoadYAMLNullAndMerge(t *testing.T) {
	file := writeFile(t, `
base: &base
  addr: ":1"
  max_message_bytes: 5
gateway:
  <<: *base
  addr: ":2"
peers: ~
store:
timeout: 0
`)
	// base is not a key: an anchor in an unknown key is still an error.
	cfg := testConfig{Peers: []string{"x"}, Timeout: time.Second}
	err := Load(&cfg, file, nil, "SB")
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "unknown key base") {
		t.Fatalf("got %v, want unknown key base", err)
	}

	file = writeFile(t, `
gateway: &gw
  addr: ":1"
  max_message_bytes: 5
  idle_timeout: 3s
store:
peers: ~
timeout: 0
name: null
`)
	cfg = testConfig{Peers: []string{"x"}, Timeout: time.Second, Name: "n", Store: &storeConfig{}}
	if err := Load(&cfg, file, nil, "SB"); err != nil {
		t.Fatal(err)
	}
	if cfg.Peers != nil || cfg.Timeout != 0 || cfg.Name != "" || cfg.Store != nil {
		t.Errorf("null did not reset: %+v", cfg)
	}

	type withTwo struct {
		A gatewayConfig `yaml:"a"`
		B gatewayConfig `yaml:"b"`
	}
	file = writeFile(t, `
a: &a
  addr: ":1"
  max_message_bytes: 5
b:
  <<: *a
  addr: ":2"
`)
	var two withTwo
	if err := Load(&two, file, nil, "SB"); err != nil {
		t.Fatal(err)
	}
	if two.B.Addr != ":2" || two.B.MaxMessageBytes != 5 {
		t.Errorf("merge: got %+v", two.B)
	}
}

func TestLoadEnv(t *testing.T) {
	env := []string{
		"SB_NAME=env name",
		"SB_DEBUG=true",
		"SB_WORKERS=-7",
		"SB_SMALL=-128",
		"SB_PORT=8080",
		"SB_RATIO=0.75",
		"SB_TIMEOUT=2h",
		"SB_PEERS= a , b,,c ",
		"SB_LOG_LEVEL=DEBUG",
		"SB_LISTEN=[::1]:9",
		"SB_GATEWAY_MAX_MESSAGE_BYTES=65536",
		"SB_GATEWAY_IDLE_TIMEOUT=30s",
		"SB_GATEWAY_TLS_CERT=/c",
		"SB_STORE_SYNC=1",
		"SB_REGION=us",
		"SB_NOTAG=3",
		"SB_NOTAG=4", // last wins
		"SB_CONFIG=/etc/sb.yaml",
		"SBX_UNRELATED=1",
		"OTHER=1",
		"MALFORMED",
	}
	var cfg testConfig
	l := Loader{Prefix: "SB_", Environ: env, IgnoreEnv: []string{"SB_CONFIG"}}
	if err := l.Load(&cfg, ""); err != nil {
		t.Fatal(err)
	}
	want := testConfig{
		Name: "env name", Debug: true, Workers: -7, Small: -128, Port: 8080, Ratio: 0.75,
		Timeout: 2 * time.Hour, Peers: []string{"a", "b", "c"}, Level: slog.LevelDebug,
		Listen: netip.MustParseAddrPort("[::1]:9"),
		Store:  &storeConfig{Sync: true},
		Base:   baseConfig{Region: "us"},
		NoTag:  4,
	}
	want.Gateway.MaxMessageBytes = 65536
	want.Gateway.IdleTimeout = 30 * time.Second
	want.Gateway.TLS.Cert = "/c"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}

	// An empty value restores the zero value (the default).
	cfg = testConfig{Workers: 5, Peers: []string{"x"}, Timeout: time.Second}
	if err := Load(&cfg, "", []string{"SB_WORKERS=", "SB_PEERS=", "SB_TIMEOUT="}, "SB"); err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 0 || cfg.Peers != nil || cfg.Timeout != 0 {
		t.Errorf("empty values did not reset: %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string // "" for no file
		env  []string
		want error    // sentinel, or nil for any error
		msgs []string // substrings of the message; FILE stands for the path
	}{
		{name: "unknown top key", yaml: "nmae: x\n", want: ErrUnknownKey,
			msgs: []string{"FILE:1:", "unknown key nmae"}},
		{name: "unknown nested key", yaml: "gateway:\n  max_mesage_bytes: 1\n", want: ErrUnknownKey,
			msgs: []string{"FILE:2:", "gateway.max_mesage_bytes"}},
		{name: "unknown key in pointer struct", yaml: "store:\n  dri: x\n", want: ErrUnknownKey,
			msgs: []string{"store.dri"}},
		{name: "skipped field is no key", yaml: "skipped: x\n", want: ErrUnknownKey},
		{name: "opaque field is no key", yaml: "logger: {}\n", want: ErrUnknownKey},
		{name: "duplicate key", yaml: "name: a\nname: b\n", want: ErrInvalidValue,
			msgs: []string{"FILE:2:", "name already set on line 1"}},
		{name: "duration without unit", yaml: "timeout: 30\n", want: ErrInvalidValue,
			msgs: []string{"FILE:1:", "timeout", "expected duration"}},
		{name: "bad duration", yaml: "gateway:\n  idle_timeout: soon\n", want: ErrInvalidValue,
			msgs: []string{"gateway.idle_timeout", `"soon"`, "expected duration"}},
		{name: "bad int", yaml: "workers: many\n", want: ErrInvalidValue,
			msgs: []string{"workers", "expected int"}},
		{name: "int overflow", yaml: "small: 128\n", want: ErrInvalidValue,
			msgs: []string{"small", "expected int8"}},
		{name: "negative uint", yaml: "port: -1\n", want: ErrInvalidValue,
			msgs: []string{"expected uint16"}},
		{name: "bad bool", yaml: "debug: maybe\n", want: ErrInvalidValue,
			msgs: []string{"expected bool"}},
		{name: "mapping for scalar", yaml: "name:\n  x: 1\n", want: ErrInvalidValue,
			msgs: []string{"name: expected string, got a mapping"}},
		{name: "scalar for struct", yaml: "gateway: 5\n", want: ErrInvalidValue,
			msgs: []string{"gateway: expected a mapping, got !!int"}},
		{name: "scalar for list", yaml: "peers: a,b\n", want: ErrInvalidValue,
			msgs: []string{"peers: expected a list of strings"}},
		{name: "list of mappings", yaml: "peers: [{a: 1}]\n", want: ErrInvalidValue,
			msgs: []string{"peers"}},
		{name: "top level list", yaml: "- a\n", want: ErrInvalidValue,
			msgs: []string{"top level: expected a mapping"}},
		{name: "bad text value", yaml: "log_level: loud\n", want: ErrInvalidValue,
			msgs: []string{"log_level", "expected slog.Level"}},
		{name: "two documents", yaml: "name: a\n---\nname: b\n", msgs: []string{"FILE", "one YAML document"}},
		{name: "syntax error", yaml: "name: [\n", msgs: []string{"FILE"}},
		{name: "all problems reported", yaml: "nmae: x\nworkers: y\n", env: []string{"SB_NMAE=x"},
			msgs: []string{"unknown key nmae", "workers", "SB_NMAE"}},

		{name: "unknown env", env: []string{"SB_GATWAY_ADDR=:1"}, want: ErrUnknownKey,
			msgs: []string{"SB_GATWAY_ADDR"}},
		{name: "env for struct is no key", env: []string{"SB_GATEWAY=x"}, want: ErrUnknownKey,
			msgs: []string{"SB_GATEWAY "}},
		{name: "bad env int", env: []string{"SB_GATEWAY_MAX_MESSAGE_BYTES=1MB"}, want: ErrInvalidValue,
			msgs: []string{"SB_GATEWAY_MAX_MESSAGE_BYTES", `"1MB"`, "expected int", "gateway.max_message_bytes"}},
		{name: "bad env duration", env: []string{"SB_TIMEOUT=30"}, want: ErrInvalidValue,
			msgs: []string{"SB_TIMEOUT", "expected duration"}},
		{name: "bad env bool", env: []string{"SB_DEBUG=yes"}, want: ErrInvalidValue,
			msgs: []string{"SB_DEBUG", "expected bool"}},
		{name: "bad env float", env: []string{"SB_RATIO=half"}, want: ErrInvalidValue,
			msgs: []string{"SB_RATIO", "expected float64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := ""
			if tc.yaml != "" {
				file = writeFile(t, tc.yaml)
			}
			var cfg testConfig
			err := Load(&cfg, file, tc.env, "SB")
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			for _, m := range tc.msgs {
				m = strings.ReplaceAll(m, "FILE", file)
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
		})
	}
}

func TestLoadBadArguments(t *testing.T) {
	var cfg testConfig
	if err := Load(cfg, "", nil, "SB"); err == nil {
		t.Error("non-pointer destination accepted")
	}
	if err := Load((*testConfig)(nil), "", nil, "SB"); err == nil {
		t.Error("nil destination accepted")
	}
	var n int
	if err := Load(&n, "", nil, "SB"); err == nil {
		t.Error("pointer to int accepted")
	}
	if err := Load(&cfg, "", nil, ""); err == nil {
		t.Error("empty prefix accepted")
	}
	err := Load(&cfg, filepath.Join(t.TempDir(), "missing.yaml"), nil, "SB")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if err := Load(&cfg, writeFile(t, ""), nil, "SB"); err != nil {
		t.Errorf("empty file: %v", err)
	}
	if err := Load(&cfg, writeFile(t, "# only a comment\n"), nil, "SB"); err != nil {
		t.Errorf("comment-only file: %v", err)
	}
}

func TestUnsupportedAndAmbiguousTypes(t *testing.T) {
	type withMap struct {
		Name   string         `yaml:"name"`
		Labels map[string]int `yaml:"labels"`
	}
	var m withMap
	err := Load(&m, "", nil, "SB")
	if err == nil || !strings.Contains(err.Error(), "labels") || !strings.Contains(err.Error(), "map[string]int") {
		t.Errorf("map field: %v", err)
	}
	if keys := Keys(m); len(keys) != 2 || keys[1].Type != "map[string]int" {
		t.Errorf("Keys lists %+v", keys)
	}

	type inner struct {
		B string `yaml:"b"`
	}
	type clash struct {
		AB    string `yaml:"a_b"`
		Inner inner  `yaml:"a"`
	}
	var c clash
	if err := Load(&c, "", nil, "SB"); err == nil || !strings.Contains(err.Error(), "A_B") {
		t.Errorf("env name clash: %v", err)
	}

	type loop struct {
		Name string `yaml:"name"`
		Next *loop  `yaml:"next"`
	}
	var l loop
	if err := Load(&l, "", nil, "SB"); err == nil || !strings.Contains(err.Error(), "recursive") {
		t.Errorf("recursive type: %v", err)
	}

	type twice struct {
		A string     `yaml:"region"`
		B baseConfig `yaml:",inline"`
	}
	var tw twice
	if err := Load(&tw, "", nil, "SB"); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("key defined twice: %v", err)
	}
}

func TestKeys(t *testing.T) {
	keys := Keys(&testConfig{})
	var got []string
	for _, k := range keys {
		got = append(got, k.Path+" "+k.Env+" "+k.Type)
	}
	want := []string{
		"name NAME string",
		"debug DEBUG bool",
		"workers WORKERS int",
		"small SMALL int8",
		"port PORT uint16",
		"ratio RATIO float64",
		"timeout TIMEOUT time.Duration",
		"peers PEERS []string",
		"log_level LOG_LEVEL slog.Level",
		"listen LISTEN netip.AddrPort",
		"gateway.addr GATEWAY_ADDR string",
		"gateway.max_message_bytes GATEWAY_MAX_MESSAGE_BYTES int",
		"gateway.idle_timeout GATEWAY_IDLE_TIMEOUT time.Duration",
		"gateway.tls.cert GATEWAY_TLS_CERT string",
		"store.dir STORE_DIR string",
		"store.sync STORE_SYNC bool",
		"region REGION string",
		"notag NOTAG int",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Keys:\n got  %q\n want %q", got, want)
	}
	if keys[0].Help != "node name" || keys[11].Help != "largest client message" || keys[1].Help != "" {
		t.Errorf("help: %+v %+v %+v", keys[0], keys[11], keys[1])
	}
	if e := keys[11].EnvVar("SWITCHBOARD"); e != "SWITCHBOARD_GATEWAY_MAX_MESSAGE_BYTES" {
		t.Errorf("EnvVar = %q", e)
	}
	if e := keys[11].EnvVar("SWITCHBOARD_"); e != "SWITCHBOARD_GATEWAY_MAX_MESSAGE_BYTES" {
		t.Errorf("EnvVar with underscore = %q", e)
	}
	// Every key's variable is accepted by Load.
	var env []string
	for _, k := range keys {
		if k.Type == "string" {
			env = append(env, k.EnvVar("SB")+"=v")
		}
	}
	var cfg testConfig
	if err := Load(&cfg, "", env, "SB"); err != nil {
		t.Errorf("variables from Keys refused: %v", err)
	}
	if Keys(42) != nil {
		t.Error("Keys(42) lists keys")
	}
}

func TestSet(t *testing.T) {
	var cfg testConfig
	if err := Set(&cfg, "gateway.idle_timeout", "5s"); err != nil || cfg.Gateway.IdleTimeout != 5*time.Second {
		t.Errorf("Set duration: %v, %v", err, cfg.Gateway.IdleTimeout)
	}
	if err := Set(&cfg, "store.dir", "/d"); err != nil || cfg.Store == nil || cfg.Store.Dir != "/d" {
		t.Errorf("Set through nil pointer: %v, %+v", err, cfg.Store)
	}
	if err := Set(&cfg, "gateway.nope", "1"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	if err := Set(&cfg, "gateway", "1"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("struct key: %v", err)
	}
	err := Set(&cfg, "port", "70000")
	if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), "port") || !strings.Contains(err.Error(), "uint16") {
		t.Errorf("bad value: %v", err)
	}
}
