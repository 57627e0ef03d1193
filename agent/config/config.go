// Package config is tillsync-agent's configuration: one YAML file (data
// dir, hub, the store's and till's ids, scanner, POS API, offline burn
// policy, logging), overridden by TILLSYNC_AGENT_* environment variables,
// which are overridden in turn by command-line flags.
//
// The file is read strictly. An unknown or misspelt key is refused with its
// line and the keys allowed there, never ignored: a till that silently runs
// without the offline cap someone meant to set is worse than one that does
// not start. Every problem — in the file, a variable or a flag — is one line
// naming the key, where the value came from (the file's line, the variable,
// the flag) and what to do about it; Load, Check and CheckHost return them
// all, so `tillsync-agent config check` can list them at once.
//
// Environment variables are named after the key: TILLSYNC_AGENT_ and the
// key's path in upper case with "_" for ".", e.g. TILLSYNC_AGENT_HUB,
// TILLSYNC_AGENT_SCANNER_PORT, TILLSYNC_AGENT_OFFLINE_STORE_CAP.
//
// The hub is reached over TLS by default (tls://127.0.0.1:8883), its
// certificate verified against hub_ca, or DefaultHubCAFile in the data dir
// when hub_ca is not set. Plain MQTT (tcp://) is accepted for a hub on this
// machine, and for another machine only with hub_plain: true.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tillsync/tillsync/agent"
	"github.com/tillsync/tillsync/internal/cli"
)

// DefaultHubCAFile is the hub's CA certificate in the data dir, used when
// hub_ca is not set: where enrollment puts it.
const DefaultHubCAFile = "hub-ca.pem"

// MaxBytes is the largest config file read (1 MiB); a config is a page.
const MaxBytes = 1 << 20

// EnvPrefix starts the name of every variable that overrides a key.
const EnvPrefix = "TILLSYNC_AGENT_"

// EnvConfig names the config file when --config is not given. It is not a
// key of the file.
const EnvConfig = EnvPrefix + "CONFIG"

// File is the configuration as the file spells it. Default gives the value
// of every key the file leaves out.
type File struct {
	// DataDir holds the outbox and the log files.
	DataDir string `yaml:"data_dir"`
	// Hub is the hub's MQTT address: tls://host:port (MQTT over TLS), or
	// tcp://host:port (plain MQTT: a hub on this machine, or HubPlain).
	Hub string `yaml:"hub"`
	// HubCA is the PEM file of the CA the hub's certificate must chain to
	// when hub is tls:// (tillsync-hub tls ca). Empty: DefaultHubCAFile in
	// the data dir when it exists (enrollment writes it there), else the
	// system's roots.
	HubCA string `yaml:"hub_ca"`
	// HubPlain allows plain MQTT (tcp://) to a hub on another machine,
	// which anyone on the network between can read and forge: only for a
	// network the coalition trusts. A hub on loopback needs no permission.
	HubPlain bool `yaml:"hub_plain"`
	// Store, Terminal and Partner identify this till and its brand.
	Store    string `yaml:"store"`
	Terminal string `yaml:"terminal"`
	Partner  string `yaml:"partner"`
	// EarnRate is the points per 100 minor units until the hub pushes rules.
	EarnRate int64 `yaml:"earn_rate"`
	// BurnTimeout bounds the wait for the hub's verdict on a burn.
	BurnTimeout time.Duration `yaml:"burn_timeout"`
	POS         POS           `yaml:"pos"`
	Scanner     Scanner       `yaml:"scanner"`
	// Offline bounds the burns approved while the hub is unreachable.
	Offline agent.OfflinePolicy `yaml:"offline"`
	Log     Log                 `yaml:"log"`
}

// POS is the POS's local API.
type POS struct {
	// Listen is the API's address; keep it on loopback.
	Listen string `yaml:"listen"`
	// SecretFile names a file holding a shared secret (at least 16
	// characters, on its first line) every POS request must carry as
	// "Authorization: Bearer <secret>". Empty: no secret. The secret itself
	// is never in this file, nor in the environment or on a command line.
	SecretFile string `yaml:"secret_file"`
}

// Scanner chooses the barcode scanner: by Port, or by USB identity (which
// survives a new port name after an unplug), not both; neither for none.
type Scanner struct {
	// Port is a serial port, e.g. COM3 or /dev/ttyACM0.
	Port string `yaml:"port"`
	// USB is "VID:PID" or "VID:PID:SERIAL" (scanner.ParseUSBMatch).
	USB string `yaml:"usb"`
	// Baud is the serial speed.
	Baud int `yaml:"baud"`
	// CheckDigit is the member cards' check digit: none, luhn or mod11.
	CheckDigit string `yaml:"check_digit"`
}

// Log says where the agent's log goes besides the OS service log (as a
// service) or stderr (in a terminal).
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json (stderr and the file).
	Format string `yaml:"format"`
	// File turns the rotating file <data_dir>/logs/agent.log on or off;
	// unset, it is on when the agent runs as a service and off in a terminal.
	File *bool `yaml:"file,omitempty"`
	// MaxSizeMB is the size at which the file is rotated.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxFiles is how many rotated files are kept besides the current one.
	MaxFiles int `yaml:"max_files"`
}

// Default is the configuration with nothing set: what `tillsync-agent run`
// used before there was a file (the flags' defaults).
func Default() File {
	return File{
		DataDir:     cli.DefaultDataDir("agent"),
		Hub:         "tls://127.0.0.1:8883",
		EarnRate:    1,
		BurnTimeout: 3 * time.Second,
		POS:         POS{Listen: "127.0.0.1:8081"},
		Scanner:     Scanner{Baud: 9600},
		Log:         Log{Level: "info", Format: "text", MaxSizeMB: 10, MaxFiles: 5},
	}
}

// SourceKind is where a value came from.
type SourceKind int

// The sources, weakest first.
const (
	FromDefault SourceKind = iota
	// FromEnrollment: the enrolled data dir's store, terminal, partner
	// and the broker address the hub gave, when nothing else names them.
	FromEnrollment
	FromFile
	FromEnv
	FromFlag
)

// Source is where one value came from.
type Source struct {
	Kind SourceKind
	// Line is the file's line (FromFile).
	Line int
	// Name is the variable (FromEnv) or the flag with its dashes (FromFlag).
	Name string
}

func (s Source) String() string {
	switch s.Kind {
	case FromFile:
		return "line " + strconv.Itoa(s.Line)
	case FromEnv, FromFlag:
		return s.Name
	case FromEnrollment:
		return "enrollment"
	}
	return "default"
}

// Problem is one thing wrong with the configuration, said in one line.
type Problem struct {
	// Key is the key's path, e.g. scanner.baud; "" for the file as a whole.
	Key string
	// Src is where the value came from.
	Src Source
	// Value is the value as given, quoted when it is text; "" when missing.
	Value string
	// Msg says what is wrong and what to do.
	Msg string
	// Warning marks something that works but is probably not meant.
	Warning bool
}

// String gives the problem as one line: "line 7: scanner.baud "fast": want
// a whole number", "TILLSYNC_AGENT_HUB "http://x": want tcp://host:port",
// "--store "s/1": use …", "store: missing; set store: to …".
func (p Problem) String() string {
	var lead []string
	switch p.Src.Kind {
	case FromFile:
		if p.Src.Line > 0 {
			lead = append(lead, "line "+strconv.Itoa(p.Src.Line)+":")
		}
		if p.Key != "" {
			lead = append(lead, p.Key)
		}
	case FromEnv, FromFlag:
		lead = append(lead, p.Src.Name)
	default:
		if p.Key != "" {
			lead = append(lead, p.Key)
		}
	}
	if p.Value != "" {
		lead = append(lead, p.Value)
	}
	s := strings.Join(lead, " ")
	if s == "" {
		return p.Msg
	}
	if strings.HasSuffix(s, ":") {
		return s + " " + p.Msg
	}
	return s + ": " + p.Msg
}

// Flag is a value given on the command line.
type Flag struct {
	// Key is the key it sets, e.g. scanner.port.
	Key string
	// Name is the flag with its dashes, e.g. --scanner.
	Name string
	// Value is the flag's value as text.
	Value string
}

// Options says what Load reads.
type Options struct {
	// Path is the config file; "" for none (the values then come from the
	// environment, the flags and the defaults).
	Path string
	// Environ is the environment (os.Environ()); only TILLSYNC_AGENT_*
	// entries are read.
	Environ []string
	// Flags are the flags given on the command line; they win over the
	// file and the environment.
	Flags []Flag
	// FlagNames maps a key to the flag that sets it ("store" → "--store"),
	// so that a problem can say how to fix it.
	FlagNames map[string]string
}

// Config is the effective configuration: the file, then the environment,
// then the flags, over the defaults.
type Config struct {
	File
	// Path is the file read; "" for none.
	Path string

	src        map[string]Source
	flagNames  map[string]string
	unreadable bool // the file is not YAML, or not a mapping
}

// Load reads the file (if any), then the environment, then the flags. The
// error is for a file that cannot be read; everything wrong with what it
// says is a Problem: bad YAML, an unknown key, a value of the wrong type,
// an unknown TILLSYNC_AGENT_ variable (a warning). A key with a problem
// keeps its default, so Check can still look at the rest.
func Load(o Options) (*Config, []Problem, error) {
	c := &Config{File: Default(), Path: o.Path, src: map[string]Source{}, flagNames: o.FlagNames}
	var probs []Problem
	if o.Path != "" {
		data, err := readFile(o.Path)
		if err != nil {
			return nil, nil, err
		}
		fp, ok := c.readYAML(data)
		probs, c.unreadable = append(probs, fp...), !ok
	}
	probs = append(probs, c.applyEnv(o.Environ)...)
	for _, f := range o.Flags {
		fd := byKey[f.Key]
		if fd == nil {
			return nil, nil, fmt.Errorf("config: flag %s sets unknown key %q", f.Name, f.Key)
		}
		if p := c.setNode(fd, &yaml.Node{Kind: yaml.ScalarNode, Value: f.Value}, Source{Kind: FromFlag, Name: f.Name}); p != nil {
			probs = append(probs, *p)
		}
	}
	c.fromEnrollment()
	return c, probs, nil
}

// fromEnrollment fills what an enrolled data dir says and nothing else
// does: the store, terminal and partner it enrolled as, and the hub's
// broker address. An unreadable enrollment is agent.New's to report.
func (c *Config) fromEnrollment() {
	e, found, err := agent.LoadEnrollment(c.DataDir)
	if err != nil || !found {
		return
	}
	for _, v := range []struct {
		key       string
		val, from *string
	}{{"store", &c.Store, &e.Store}, {"terminal", &c.Terminal, &e.Terminal}, {"partner", &c.Partner, &e.Partner}, {"hub", &c.Hub, &e.MQTT}} {
		if c.src[v.key].Kind == FromDefault && *v.from != "" {
			*v.val, c.src[v.key] = *v.from, Source{Kind: FromEnrollment}
		}
	}
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config %s: no such file; write one (tillsync-agent config example --output %s) or name another with --config", path, path)
		}
		return nil, fmt.Errorf("config %s: %v", path, rootCause(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %v", path, rootCause(err))
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("config %s: larger than %d bytes; is it the right file?", path, MaxBytes)
	}
	return data, nil
}

// Source tells where key's value came from.
func (c *Config) Source(key string) Source { return c.src[key] }

// FixWith names what to change to give key another value, for messages
// such as "choose a writable one with …": the flag or variable that set it,
// else the key in the file (with its line), else the flag.
func (c *Config) FixWith(key string) string {
	s := c.src[key]
	switch s.Kind {
	case FromFlag, FromEnv:
		return s.Name
	case FromFile:
		return fmt.Sprintf("%s: in %s (line %d)", key, c.Path, s.Line)
	}
	if c.Path != "" {
		return fmt.Sprintf("%s: in %s", key, c.Path)
	}
	if f := c.flagNames[key]; f != "" {
		return f
	}
	if fd := byKey[key]; fd != nil {
		return fd.env
	}
	return key
}

// LogPath is the log file: <data_dir>/logs/agent.log.
func (c *Config) LogPath() string { return filepath.Join(c.DataDir, "logs", "agent.log") }

// LogToFile reports whether the log file is written: as configured, else
// when running as a service.
func (c *Config) LogToFile(asService bool) bool {
	if c.Log.File != nil {
		return *c.Log.File
	}
	return asService
}

// The schema, built once from File's yaml tags.

type field struct {
	key   string // e.g. scanner.port
	env   string // e.g. TILLSYNC_AGENT_SCANNER_PORT
	index []int  // into File
	typ   reflect.Type
}

var (
	fields   []*field // in File's order
	byKey    = map[string]*field{}
	byEnv    = map[string]*field{}
	sections = map[string][]string{} // "" (the top level) and each section → the names allowed in it
)

func init() { addFields(reflect.TypeFor[File](), nil, "") }

func addFields(t reflect.Type, index []int, prefix string) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := join(prefix, name)
		idx := append(slices.Clone(index), i)
		sections[prefix] = append(sections[prefix], name)
		if sf.Type.Kind() == reflect.Struct {
			addFields(sf.Type, idx, key)
			continue
		}
		f := &field{key: key, env: EnvName(key), index: idx, typ: sf.Type}
		fields = append(fields, f)
		byKey[key], byEnv[f.env] = f, f
	}
}

// Keys lists every key of the file, e.g. data_dir, scanner.port, in the
// file's order.
func Keys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

// EnvName is the variable that overrides key: scanner.port →
// TILLSYNC_AGENT_SCANNER_PORT.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (c *Config) value(f *field) reflect.Value {
	return reflect.ValueOf(&c.File).Elem().FieldByIndex(f.index)
}

// Reading the file.

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// readYAML sets the keys the file sets; ok is false when the file could
// not be read as keys with values at all.
func (c *Config) readYAML(data []byte) (probs []Problem, ok bool) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true // an empty file: every key at its default
		}
		return []Problem{yamlProblem(err)}, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return []Problem{{Src: Source{Kind: FromFile, Line: max(extra.Line, 1)}, Msg: "a second document (after ---); the config is one document"}}, false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, true // only comments
	}
	if root.Kind != yaml.MappingNode {
		return []Problem{{Src: Source{Kind: FromFile, Line: root.Line}, Msg: "want keys with values (key: value), e.g. store: gc-berlin-01"}}, false
	}
	probs = c.mapping(root, "")
	if len(probs) == 0 {
		// The walk above knows the schema; the strict decoder is the
		// check that it knows it right.
		var f File
		sd := yaml.NewDecoder(bytes.NewReader(data))
		sd.KnownFields(true)
		var te *yaml.TypeError
		if err := sd.Decode(&f); errors.As(err, &te) {
			for _, e := range te.Errors {
				if strings.Contains(e, "not found in type") {
					probs = append(probs, yamlProblem(errors.New(e)))
				}
			}
		}
	}
	return probs, true
}

func yamlProblem(err error) Problem {
	msg := oneLine(strings.TrimPrefix(err.Error(), "yaml: "))
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{Src: Source{Kind: FromFile, Line: n}, Msg: m[2]}
	}
	return Problem{Src: Source{Kind: FromFile}, Msg: "not YAML: " + msg}
}

func (c *Config) mapping(n *yaml.Node, prefix string) []Problem {
	var probs []Problem
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if k.Kind != yaml.ScalarNode {
			probs = append(probs, Problem{Src: Source{Kind: FromFile, Line: k.Line}, Msg: "a key must be plain text"})
			continue
		}
		key := join(prefix, k.Value)
		at := Source{Kind: FromFile, Line: k.Line}
		if line, dup := seen[k.Value]; dup {
			probs = append(probs, Problem{Key: key, Src: at, Msg: fmt.Sprintf("set twice (also on line %d); keep one", line)})
			continue
		}
		seen[k.Value] = k.Line
		if names, ok := sections[key]; ok {
			switch {
			case v.Kind == yaml.MappingNode:
				probs = append(probs, c.mapping(v, key)...)
			case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
				// "scanner:" and nothing below it: an empty section.
			default:
				probs = append(probs, Problem{Key: key, Src: at, Msg: fmt.Sprintf("want a section: its keys (%s) indented below it", strings.Join(names, ", "))})
			}
			continue
		}
		f := byKey[key]
		if f == nil {
			probs = append(probs, unknownKey(at, prefix, k.Value))
			continue
		}
		if p := c.setNode(f, v, Source{Kind: FromFile, Line: k.Line}); p != nil {
			probs = append(probs, *p)
		}
	}
	return probs
}

func unknownKey(at Source, prefix, name string) Problem {
	where := "the top level takes"
	if prefix != "" {
		where = prefix + " takes"
	}
	allowed := sections[prefix]
	msg := "unknown key"
	if s := suggest(prefix, name); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return Problem{Key: join(prefix, name), Src: at, Msg: fmt.Sprintf("%s (%s %s)", msg, where, strings.Join(allowed, ", "))}
}

// suggest finds the key name probably meant: a near spelling at the same
// level, or the same name in a section ("port" → scanner.port).
func suggest(prefix, name string) string {
	best, bestD := "", 3
	for _, a := range sections[prefix] {
		if d := distance(strings.ToLower(name), a); d < bestD {
			best, bestD = join(prefix, a), d
		}
	}
	if best != "" {
		return best
	}
	for _, f := range fields {
		if strings.HasSuffix(f.key, "."+name) || f.key == strings.ReplaceAll(name, "_", ".") {
			return f.key
		}
	}
	return ""
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Environment.

func (c *Config) applyEnv(environ []string) []Problem {
	var probs []Problem
	set := map[*field]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfig {
			continue
		}
		f := byEnv[name]
		if f == nil {
			msg := "not a setting of tillsync-agent; ignored"
			if s := suggestEnv(name); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			probs = append(probs, Problem{Src: Source{Kind: FromEnv, Name: name}, Msg: msg, Warning: true})
			continue
		}
		set[f] = val
	}
	for _, f := range fields { // the schema's order, whatever the environment's
		if val, ok := set[f]; ok {
			if p := c.setNode(f, &yaml.Node{Kind: yaml.ScalarNode, Value: val}, Source{Kind: FromEnv, Name: f.env}); p != nil {
				probs = append(probs, *p)
			}
		}
	}
	return probs
}

func suggestEnv(name string) string {
	best, bestD := "", 3
	for _, f := range fields {
		if d := distance(name, f.env); d < bestD {
			best, bestD = f.env, d
		}
	}
	return best
}

// setNode sets f from one YAML scalar, the file's or one made from a
// variable or flag, so all three read values by the same rules.
func (c *Config) setNode(f *field, n *yaml.Node, src Source) *Problem {
	dst := c.value(f)
	if n.Kind != yaml.ScalarNode {
		return &Problem{Key: f.key, Src: src, Msg: "want one value here, not a list or a section"}
	}
	// "key:" with no value, "key: ~", an empty variable: explicitly nothing.
	// (A variable or flag is text: "null" there is the word null.)
	null := n.Value == "" || (src.Kind == FromFile && n.Style == 0 && n.ShortTag() == "!!null")
	switch {
	case null:
		dst.Set(reflect.Zero(f.typ))
	case f.typ.Kind() == reflect.String:
		// Text as written: an id 0042 stays "0042".
		dst.SetString(n.Value)
	default:
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			// baud: "9600" means 9600: look at the text, not the quotes.
			n = &yaml.Node{Kind: yaml.ScalarNode, Value: n.Value, Line: n.Line}
		}
		v := reflect.New(f.typ)
		if err := n.Decode(v.Interface()); err != nil {
			return &Problem{Key: f.key, Src: src, Value: strconv.Quote(n.Value), Msg: "want " + want(f.typ)}
		}
		dst.Set(v.Elem())
	}
	c.src[f.key] = src
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration such as "30s", "15m" or "24h"`
	case t.Kind() == reflect.Bool || (t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool):
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "a whole number"
	}
	return t.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func rootCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
