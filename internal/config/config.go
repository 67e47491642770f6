package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	// ErrUnknownKey is wrapped when a YAML key, an environment variable
	// with the prefix, or a key given to Set names no field.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalidValue is wrapped when a value does not parse as its
	// field's type.
	ErrInvalidValue = errors.New("config: invalid value")
)

// keyError carries a full message and the sentinel it wraps.
type keyError struct {
	kind error
	msg  string
}

func (e *keyError) Error() string { return "config: " + e.msg }
func (e *keyError) Unwrap() error { return e.kind }

func newError(kind error, format string, args ...any) error {
	return &keyError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Load fills dst, a pointer to a struct, from a YAML file and then from
// the environment: Loader{Prefix: prefix, Environ: environ}.Load(dst, file).
func Load(dst any, file string, environ []string, prefix string) error {
	return Loader{Prefix: prefix, Environ: environ}.Load(dst, file)
}

// Loader fills config structs. The zero value needs a Prefix.
type Loader struct {
	// Prefix of the environment variables, e.g. "SWITCHBOARD" for
	// SWITCHBOARD_GATEWAY_ADDR. Required; a trailing "_" is optional.
	Prefix string

	// Environ holds "NAME=value" entries, as os.Environ returns them.
	// nil means no environment. Later entries win over earlier ones.
	Environ []string

	// IgnoreEnv lists full names of variables that carry the prefix but
	// are not config keys, e.g. SWITCHBOARD_CONFIG naming the file.
	// Every other prefixed variable must name a key.
	IgnoreEnv []string
}

// Load fills dst, a non-nil pointer to a struct, in increasing
// precedence: what dst already holds (normally its zero value), the YAML
// file (skipped when file is ""), then l.Environ. Apply command-line flags
// afterwards with Set. Load reports every problem it finds, joined; on
// error dst may be partly filled.
func (l Loader) Load(dst any, file string) error {
	root, err := rootValue(dst)
	if err != nil {
		return err
	}
	prefix := strings.TrimSuffix(l.Prefix, "_")
	if prefix == "" {
		return errors.New("config: empty environment prefix")
	}
	ls, err := leaves(root.Type())
	if err != nil {
		return err
	}
	var fileErr error
	if file != "" {
		fileErr = loadFile(root, file)
	}
	return errors.Join(fileErr, l.loadEnv(root, ls, prefix+"_"))
}

// Set parses value as the type of the field at key (a dotted path such as
// "gateway.max_message_bytes") and stores it in dst, with the rules used
// for environment variables. It is meant for command-line flags, after
// Load:
//
//	fs.Visit(func(f *flag.Flag) { errs = append(errs, config.Set(&cfg, f.Name, f.Value.String())) })
func Set(dst any, key, value string) error {
	root, err := rootValue(dst)
	if err != nil {
		return err
	}
	ls, err := leaves(root.Type())
	if err != nil {
		return err
	}
	for _, lf := range ls {
		if lf.key == key {
			if err := setString(field(root, lf.path), value); err != nil {
				return newError(ErrInvalidValue, "%s=%q: expected %s", key, value, expected(lf.typ))
			}
			return nil
		}
	}
	return newError(ErrUnknownKey, "unknown key %q", key)
}

// KeyDoc describes one configuration key.
type KeyDoc struct {
	Path string // dotted YAML path, e.g. "gateway.max_message_bytes"
	Env  string // variable name without the prefix: "GATEWAY_MAX_MESSAGE_BYTES"
	Type string // Go type: "int", "time.Duration", "[]string", ...
	Help string // the field's help:"..." tag
}

// EnvVar returns the full variable name for prefix, e.g.
// "SWITCHBOARD_GATEWAY_MAX_MESSAGE_BYTES".
func (k KeyDoc) EnvVar(prefix string) string {
	return strings.TrimSuffix(prefix, "_") + "_" + k.Env
}

// Keys lists the keys of v, a struct or pointer to struct, in field
// order, depth first. Fields of a type Load does not support are listed
// too (Load refuses them).
func Keys(v any) []KeyDoc {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var w walker
	w.walk(t, "", nil)
	docs := make([]KeyDoc, len(w.out))
	for i, lf := range w.out {
		docs[i] = KeyDoc{Path: lf.key, Env: envSuffix(lf.key), Type: lf.typ.String(), Help: lf.help}
	}
	return docs
}

func rootValue(dst any) (reflect.Value, error) {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("config: destination is %T, want a non-nil pointer to a struct", dst)
	}
	return v.Elem(), nil
}

// ---- The field model ----

type kind int

const (
	kUnsupported kind = iota
	kString
	kBool
	kInt
	kUint
	kFloat
	kDuration
	kText // implements encoding.TextUnmarshaler
	kStrings
	kStruct
	kStructPtr
)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func kindOf(t reflect.Type) kind {
	switch {
	case t == durationType:
		return kDuration
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return kText
	}
	switch t.Kind() {
	case reflect.String:
		return kString
	case reflect.Bool:
		return kBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return kUint
	case reflect.Float32, reflect.Float64:
		return kFloat
	case reflect.Slice:
		if t.Elem() == reflect.TypeFor[string]() {
			return kStrings
		}
	case reflect.Struct:
		return kStruct
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Struct && kindOf(t.Elem()) == kStruct {
			return kStructPtr
		}
	}
	return kUnsupported
}

// expected describes t in error messages.
func expected(t reflect.Type) string {
	switch kindOf(t) {
	case kDuration:
		return `duration (e.g. "30s", "1m30s")`
	case kStrings:
		return "list of strings"
	case kBool:
		return "bool (true or false)"
	case kInt:
		if b := t.Bits(); b < 64 {
			return fmt.Sprintf("%s from %d to %d", t, -1<<(b-1), 1<<(b-1)-1)
		}
	case kUint:
		if b := t.Bits(); b < 64 {
			return fmt.Sprintf("%s from 0 to %d", t, 1<<b-1)
		}
	}
	return t.String()
}

// member is one key of one struct level; inline fields are flattened.
type member struct {
	name  string
	index []int // field indexes within the struct
	typ   reflect.Type
	help  string
}

// members returns the keys of struct type t: the yaml tag's name, else
// the lower-cased field name (as yaml does). Unexported fields, opaque
// structs and `yaml:"-"` are skipped; `yaml:",inline"` structs are
// flattened.
func members(t reflect.Type) ([]member, error) {
	var out []member
	seen := map[string]bool{}
	var add func(t reflect.Type, index []int) error
	add = func(t reflect.Type, index []int) error {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if hasOpt(opts, "inline") {
				if f.Type.Kind() != reflect.Struct {
					return fmt.Errorf("config: %s.%s: inline is supported for structs only", t, f.Name)
				}
				if err := add(f.Type, idx); err != nil {
					return err
				}
				continue
			}
			if opaque(f.Type) {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if seen[name] {
				return fmt.Errorf("config: %s: key %q defined twice", t, name)
			}
			seen[name] = true
			out = append(out, member{name: name, index: idx, typ: f.Type, help: f.Tag.Get("help")})
		}
		return nil
	}
	err := add(t, nil)
	return out, err
}

// opaque reports whether t is a struct or pointer to struct without
// exported fields, such as *slog.Logger: not something a file can set.
func opaque(t reflect.Type) bool {
	switch kindOf(t) {
	case kStructPtr:
		t = t.Elem()
	case kStruct:
	default:
		return false
	}
	for i := range t.NumField() {
		if t.Field(i).IsExported() {
			return false
		}
	}
	return true
}

func hasOpt(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// leaf is a key that holds a value.
type leaf struct {
	key  string
	path []int // field indexes from the root, through struct pointers
	typ  reflect.Type
	help string
}

type walker struct {
	out      []leaf
	err      error
	visiting []reflect.Type
}

func (w *walker) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *walker) walk(t reflect.Type, prefix string, path []int) {
	for _, v := range w.visiting {
		if v == t {
			w.fail(fmt.Errorf("config: %s: recursive type %s", prefix, t))
			return
		}
	}
	w.visiting = append(w.visiting, t)
	defer func() { w.visiting = w.visiting[:len(w.visiting)-1] }()
	ms, err := members(t)
	if err != nil {
		w.fail(err)
	}
	for _, m := range ms {
		key := joinKey(prefix, m.name)
		p := append(append([]int(nil), path...), m.index...)
		switch kindOf(m.typ) {
		case kStruct:
			w.walk(m.typ, key, p)
		case kStructPtr:
			w.walk(m.typ.Elem(), key, p)
		case kUnsupported:
			w.fail(fmt.Errorf("config: key %s: unsupported type %s", key, m.typ))
			fallthrough
		default:
			w.out = append(w.out, leaf{key: key, path: p, typ: m.typ, help: m.help})
		}
	}
}

// leaves returns the leaves of struct type t, or an error if a field
// has an unsupported type or two keys share an environment name.
func leaves(t reflect.Type) ([]leaf, error) {
	var w walker
	w.walk(t, "", nil)
	if w.err != nil {
		return nil, w.err
	}
	byEnv := map[string]string{}
	for _, lf := range w.out {
		env := envSuffix(lf.key)
		if other, dup := byEnv[env]; dup {
			return nil, fmt.Errorf("config: keys %s and %s share the environment name %s", other, lf.key, env)
		}
		byEnv[env] = lf.key
	}
	return w.out, nil
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// envSuffix upper-cases key and turns every character other than a
// letter or digit into '_'.
func envSuffix(key string) string {
	b := []byte(key)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// field returns the field at path, allocating nil struct pointers.
func field(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

// setString parses s into v. An empty s stores the zero value.
// Integers are decimal; a list is comma-separated, blanks trimmed and
// empty elements dropped.
func setString(v reflect.Value, s string) error {
	if s == "" {
		v.SetZero()
		return nil
	}
	switch kindOf(v.Type()) {
	case kString:
		v.SetString(s)
	case kBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case kInt:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case kUint:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case kFloat:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case kDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case kText:
		p := reflect.New(v.Type())
		if err := p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return err
		}
		v.Set(p.Elem())
	case kStrings:
		var list []string
		for e := range strings.SplitSeq(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				list = append(list, e)
			}
		}
		v.Set(reflect.ValueOf(list).Convert(v.Type()))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// ---- Environment ----

func (l Loader) loadEnv(root reflect.Value, ls []leaf, prefix string) error {
	byEnv := make(map[string]leaf, len(ls))
	for _, lf := range ls {
		byEnv[prefix+envSuffix(lf.key)] = lf
	}
	ignore := make(map[string]bool, len(l.IgnoreEnv))
	for _, name := range l.IgnoreEnv {
		ignore[name] = true
	}
	// Last entry wins, as in os/exec.
	vals := map[string]string{}
	var names []string
	for _, kv := range l.Environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, prefix) || ignore[name] {
			continue
		}
		if _, dup := vals[name]; !dup {
			names = append(names, name)
		}
		vals[name] = val
	}
	var errs []error
	for _, name := range names {
		lf, ok := byEnv[name]
		if !ok {
			errs = append(errs, newError(ErrUnknownKey, "environment variable %s matches no key", name))
			continue
		}
		val := vals[name]
		if err := setString(field(root, lf.path), val); err != nil {
			errs = append(errs, newError(ErrInvalidValue, "%s=%q: expected %s (key %s)",
				name, val, expected(lf.typ), lf.key))
		}
	}
	return errors.Join(errs...)
}

// ---- YAML ----

func loadFile(root reflect.Value, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case err == io.EOF:
		return nil // empty file
	case err != nil:
		return fmt.Errorf("config: %s: %w", file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return fmt.Errorf("config: %s: want one YAML document", file)
	}
	d := yamlDecoder{file: file}
	n := &doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	d.mapping(n, root, "")
	return errors.Join(d.errs...)
}

type yamlDecoder struct {
	file string
	errs []error
}

func (d *yamlDecoder) errorf(n *yaml.Node, sentinel error, format string, args ...any) {
	d.errs = append(d.errs, newError(sentinel, "%s:%d: %s", d.file, n.Line, fmt.Sprintf(format, args...)))
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	}
	return n.ShortTag()
}

// mapping applies mapping node n to struct v; key is v's path.
func (d *yamlDecoder) mapping(n *yaml.Node, v reflect.Value, key string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		where := key
		if where == "" {
			where = "top level"
		}
		d.errorf(n, ErrInvalidValue, "%s: expected a mapping, got %s", where, nodeKind(n))
		return
	}
	ms, _ := members(v.Type()) // checked by leaves
	byName := make(map[string]member, len(ms))
	for _, m := range ms {
		byName[m.name] = m
	}
	// Merge keys (<<: *base) first, so that explicit keys override.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged := resolve(n.Content[i+1])
			if merged.Kind == yaml.SequenceNode {
				for _, m := range merged.Content {
					d.mapping(m, v, key)
				}
			} else {
				d.mapping(merged, v, key)
			}
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			continue
		}
		name := k.Value
		path := joinKey(key, name)
		if line, dup := seen[name]; dup {
			d.errorf(k, ErrInvalidValue, "key %s already set on line %d", path, line)
			continue
		}
		seen[name] = k.Line
		m, ok := byName[name]
		if k.Kind != yaml.ScalarNode || !ok {
			d.errorf(k, ErrUnknownKey, "unknown key %s", path)
			continue
		}
		d.value(val, v.FieldByIndex(m.index), path)
	}
}

// value applies node n to field v at key.
func (d *yamlDecoder) value(n *yaml.Node, v reflect.Value, key string) {
	n = resolve(n)
	switch kindOf(v.Type()) {
	case kStruct:
		d.mapping(n, v, key)
		return
	case kStructPtr:
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.mapping(n, v.Elem(), key)
		return
	case kStrings:
		if isNull(n) {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, ErrInvalidValue, "%s: expected a list of strings, got %s", key, nodeKind(n))
			return
		}
		list := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			e = resolve(e)
			if e.Kind != yaml.ScalarNode || isNull(e) {
				d.errorf(e, ErrInvalidValue, "%s: expected a list of strings, got an element that is %s", key, nodeKind(e))
				return
			}
			list = append(list, e.Value)
		}
		v.Set(reflect.ValueOf(list).Convert(v.Type()))
		return
	}
	switch {
	case n.Kind != yaml.ScalarNode:
		d.errorf(n, ErrInvalidValue, "%s: expected %s, got %s", key, expected(v.Type()), nodeKind(n))
	case isNull(n):
		v.SetZero()
	default:
		if err := setString(v, n.Value); err != nil {
			d.errorf(n, ErrInvalidValue, "%s: %q: expected %s", key, n.Value, expected(v.Type()))
		}
	}
}
