// Package config fills a configuration struct from a YAML file, the
// environment and command-line flags, for cmd/switchboard.
//
// # Precedence
//
// Lowest first: the struct's zero value (each package's New fills in its
// defaults later), the YAML file, environment variables, flags. Load does
// the first three; the caller applies the flags that were set afterwards,
// with Set, so nothing needs to track which keys flags own:
//
//	var cfg Config
//	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
//	file := fs.String("config", os.Getenv("SWITCHBOARD_CONFIG"), "YAML config file")
//	fs.String("gateway.addr", "", "listen address") // flag name = key
//	if err := fs.Parse(args); err != nil { ... }
//	l := config.Loader{Prefix: "SWITCHBOARD", Environ: os.Environ(),
//		IgnoreEnv: []string{"SWITCHBOARD_CONFIG"}}
//	err := l.Load(&cfg, *file)
//	fs.Visit(func(f *flag.Flag) {
//		if f.Name != "config" {
//			err = errors.Join(err, config.Set(&cfg, f.Name, f.Value.String()))
//		}
//	})
//
// # Keys
//
// A key is the dotted path of yaml tag names, e.g. gateway.max_message_bytes
// for a field tagged `yaml:"max_message_bytes"` in a field tagged
// `yaml:"gateway"`. An untagged field is keyed by its lower-cased name, as
// yaml does. Skipped: `yaml:"-"`, unexported fields, and structs or struct
// pointers without exported fields (such as a *slog.Logger). A struct field
// tagged `yaml:",inline"` adds its keys to its parent's. A `help:"..."` tag
// documents the key; Keys lists every key for --help output and docs.
//
// Supported field types: string, bool, every int and uint, float32 and
// float64, time.Duration, []string, any type whose pointer implements
// encoding.TextUnmarshaler (e.g. slog.Level, netip.AddrPort), and structs
// and pointers to structs holding these (a nil pointer is allocated when
// one of its keys is set). Load refuses a struct with any other field type.
//
// # Values
//
// The same text rules apply to YAML scalars, environment values and Set:
// integers are decimal; bools are strconv.ParseBool's; durations are
// time.ParseDuration's ("30s", "1m30s"; a bare number other than 0 is
// refused, not taken as nanoseconds), plain or quoted in YAML. An empty
// value (or YAML null) stores the zero value, that is, the default. A
// []string is a YAML sequence, or a comma-separated environment value with
// blanks trimmed and empty elements dropped.
//
// # Environment
//
// The variable for a key is the prefix, "_", and the key upper-cased with
// every other character than a letter or digit turned into "_":
// SWITCHBOARD_GATEWAY_MAX_MESSAGE_BYTES. A variable with the prefix that
// names no key is an error, so that a typo is not silently ignored, unless
// it is listed in Loader.IgnoreEnv. Two keys that would share a variable
// name are an error.
//
// # Errors
//
// Unknown keys, in the file (with file, line and dotted key), the
// environment or Set, wrap ErrUnknownKey; values that do not parse wrap
// ErrInvalidValue and name the key or variable and the expected type.
// Load reports all such problems at once, joined with errors.Join.
// Unknown keys are found by walking the YAML node tree alongside the
// struct rather than with yaml's KnownFields, so that messages carry the
// full dotted key.
package config
