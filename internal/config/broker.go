package config

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Broker is a broker's configuration: static layers plus dynamic overrides.
// Safe for concurrent use.
type Broker struct {
	mu      sync.RWMutex
	static  map[string]string // every config set in any static layer
	dynamic map[string]string
}

// Load builds the static broker configuration and validates every value.
// Precedence: Flags > Sets > Env > File > defaults.
func Load(opts LoadOptions) (*Broker, error) {
	static := map[string]string{}
	if opts.File != "" {
		if err := loadFile(opts.File, static); err != nil {
			return nil, err
		}
	}
	for _, kv := range opts.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "TIERCEL_") {
			continue
		}
		if name, ok := envName(k); ok {
			if err := check(name, v, "environment variable "+k); err != nil {
				return nil, err
			}
			static[name] = v
		}
	}
	for _, kv := range opts.Sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%w: --set %q: want key=value", ErrInvalid, kv)
		}
		if err := check(k, v, "--set"); err != nil {
			return nil, err
		}
		static[k] = v
	}
	for k, v := range opts.Flags {
		if err := check(k, v, "flag"); err != nil {
			return nil, err
		}
		static[k] = v
	}
	return &Broker{static: static, dynamic: map[string]string{}}, nil
}

// envName maps TIERCEL_LOG_RETENTION_MS to log.retention.ms through the
// registry, since underscores and dots both exist in config names.
func envName(env string) (string, bool) {
	want := strings.TrimPrefix(env, "TIERCEL_")
	for _, d := range allBroker {
		if strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(d.Name)) == want {
			return d.Name, true
		}
	}
	return "", false
}

func loadFile(path string, into map[string]string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return fmt.Errorf("%w: config file %s: %v", ErrInvalid, path, err)
	}
	flat := map[string]string{}
	flatten("", tree, flat)
	for k, v := range flat {
		if err := check(k, v, "config file "+path); err != nil {
			return err
		}
		into[k] = v
	}
	return nil
}

func flatten(prefix string, v any, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, sub := range t {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			flatten(name, sub, out)
		}
	case []any:
		parts := make([]string, len(t))
		for i, p := range t {
			parts[i] = fmt.Sprint(p)
		}
		out[prefix] = strings.Join(parts, ",")
	case nil:
		out[prefix] = ""
	default:
		out[prefix] = fmt.Sprint(t)
	}
}

// check validates one broker config value from a named source.
func check(name, value, source string) error {
	d, ok := brokerDef(name)
	if !ok {
		if td, isTopic := byName[name]; isTopic && td.Topic {
			return fmt.Errorf("%w: %s: %q is a topic config; the broker default is %q", ErrUnknown, source, name, td.BrokerName)
		}
		return fmt.Errorf("%w: %s: unknown config %q", ErrUnknown, source, name)
	}
	if d.Validate != nil {
		if err := d.Validate(value); err != nil {
			return fmt.Errorf("%w: %s: %s=%q: %v", ErrInvalid, source, name, value, err)
		}
	}
	return nil
}

// Get returns the effective value of a broker config.
func (b *Broker) Get(name string) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, _ := b.get(name)
	return v
}

func (b *Broker) get(name string) (string, Source) {
	if v, ok := b.dynamic[name]; ok {
		return v, SourceDynamicBroker
	}
	if v, ok := b.static[name]; ok {
		return v, SourceStaticBroker
	}
	switch name {
	case "log.retention.ms":
		return b.derivedMs("log.retention.ms", "log.retention.minutes", "log.retention.hours")
	case "log.roll.ms":
		return b.derivedMs("log.roll.ms", "", "log.roll.hours")
	case "node.id":
		if v, ok := b.static["broker.id"]; ok && v != "-1" {
			return v, SourceStaticBroker
		}
	}
	d, _ := brokerDef(name)
	return d.Default, SourceDefault
}

// derivedMs applies Kafka's ms > minutes > hours precedence.
func (b *Broker) derivedMs(ms, minutes, hours string) (string, Source) {
	if minutes != "" {
		if v, ok := b.static[minutes]; ok && v != "" {
			n, _ := strconv.ParseInt(v, 10, 64)
			return strconv.FormatInt(n*60_000, 10), SourceStaticBroker
		}
	}
	if v, ok := b.static[hours]; ok {
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < 0 {
			return "-1", SourceStaticBroker
		}
		return strconv.FormatInt(n*3_600_000, 10), SourceStaticBroker
	}
	d, _ := brokerDef(ms)
	return d.Default, SourceDefault
}

// Int64 returns a numeric broker config (0 if unset or not a number).
func (b *Broker) Int64(name string) int64 {
	n, _ := strconv.ParseInt(b.Get(name), 10, 64)
	return n
}

// Bool returns a boolean broker config.
func (b *Broker) Bool(name string) bool { return b.Get(name) == "true" }

// SetDynamic replaces the dynamic broker overrides (validated first).
func (b *Broker) SetDynamic(values map[string]string) error {
	if err := ValidateDynamic(values); err != nil {
		return err
	}
	cp := make(map[string]string, len(values))
	for k, v := range values {
		cp[k] = v
	}
	b.mu.Lock()
	b.dynamic = cp
	b.mu.Unlock()
	return nil
}

// ValidateDynamic checks dynamic broker overrides without applying them.
func ValidateDynamic(values map[string]string) error {
	for k, v := range values {
		d, ok := brokerDef(k)
		if !ok {
			return fmt.Errorf("%w: unknown broker config %q", ErrUnknown, k)
		}
		if !d.Dynamic {
			return fmt.Errorf("%w: broker config %q cannot be changed at run time", ErrInvalid, k)
		}
		if err := check(k, v, "dynamic broker config"); err != nil {
			return err
		}
	}
	return nil
}

// Dynamic returns the dynamic broker overrides.
func (b *Broker) Dynamic() map[string]string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	cp := make(map[string]string, len(b.dynamic))
	for k, v := range b.dynamic {
		cp[k] = v
	}
	return cp
}

// Describe lists every broker config with its value and source.
func (b *Broker) Describe() []Value {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Value, 0, len(allBroker))
	for _, d := range allBroker {
		v, src := b.get(d.Name)
		val := Value{Def: d, Value: v, Source: src, ReadOnly: !d.Dynamic}
		if dv, ok := b.dynamic[d.Name]; ok {
			val.Synonyms = append(val.Synonyms, Synonym{Name: d.Name, Value: dv, Source: SourceDynamicBroker})
		}
		if sv, ok := b.static[d.Name]; ok {
			val.Synonyms = append(val.Synonyms, Synonym{Name: d.Name, Value: sv, Source: SourceStaticBroker})
		}
		val.Synonyms = append(val.Synonyms, Synonym{Name: d.Name, Value: d.Default, Source: SourceDefault})
		if d.Sensitive {
			val.Value = ""
		}
		out = append(out, val)
	}
	return out
}

// Topic resolves a topic's configs: overrides > broker (dynamic, static) > defaults.
func (b *Broker) Topic(overrides map[string]string) []Value {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Value, 0, len(topicNames))
	for _, name := range topicNames {
		out = append(out, b.topicValue(overrides, byName[name]))
	}
	return out
}

func (b *Broker) topicValue(overrides map[string]string, d Def) Value {
	val := Value{Def: d}
	if v, ok := overrides[d.Name]; ok {
		val.Synonyms = append(val.Synonyms, Synonym{Name: d.Name, Value: v, Source: SourceDynamicTopic})
	}
	if d.BrokerName != "" {
		v, src := b.get(d.BrokerName)
		if src != SourceDefault {
			val.Synonyms = append(val.Synonyms, Synonym{Name: d.BrokerName, Value: v, Source: src})
		}
	}
	val.Synonyms = append(val.Synonyms, Synonym{Name: d.Name, Value: d.Default, Source: SourceDefault})
	val.Value, val.Source = val.Synonyms[0].Value, val.Synonyms[0].Source
	if val.Source == SourceDefault && d.BrokerName != "" {
		// A derived default (log.retention.hours) still counts as default.
		val.Value, _ = b.get(d.BrokerName)
	}
	return val
}

// TopicValue returns one resolved topic config value.
func (b *Broker) TopicValue(overrides map[string]string, name string) string {
	d, ok := byName[name]
	if !ok || !d.Topic {
		return ""
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topicValue(overrides, d).Value
}

// TopicInt64 returns a numeric topic config.
func (b *Broker) TopicInt64(overrides map[string]string, name string) int64 {
	n, _ := strconv.ParseInt(b.TopicValue(overrides, name), 10, 64)
	return n
}

// ValidateTopic checks topic overrides: known names, valid values.
func ValidateTopic(overrides map[string]string) error {
	for k, v := range overrides {
		d, ok := byName[k]
		if !ok || !d.Topic {
			return fmt.Errorf("%w: unknown topic config %q", ErrUnknown, k)
		}
		if d.Validate != nil {
			if err := d.Validate(v); err != nil {
				return fmt.Errorf("%w: %s=%q: %v", ErrInvalid, k, v, err)
			}
		}
	}
	return nil
}

// ParseListener accepts host:port or PLAINTEXT://host:port and returns host:port.
func ParseListener(v string) (string, error) {
	addr := v
	if scheme, rest, ok := strings.Cut(v, "://"); ok {
		if scheme != "PLAINTEXT" {
			return "", fmt.Errorf("listener %q: only PLAINTEXT is supported", v)
		}
		addr = rest
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("listener %q: want host:port or PLAINTEXT://host:port", v)
	}
	return addr, nil
}

// List returns a list config's comma-separated items, trimmed, empty ones dropped.
func (b *Broker) List(name string) []string {
	var out []string
	for _, item := range strings.Split(b.Get(name), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
