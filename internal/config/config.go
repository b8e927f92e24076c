// Package config is the registry of broker and topic configurations under
// Kafka's names, types, defaults and documentation, the layered loading of
// a broker's static configuration (flags > TIERCEL_* environment > YAML file
// > defaults), and the resolution of a topic's effective configuration with
// the source of every value, as DescribeConfigs reports it.
package config

import "errors"

// ErrInvalid wraps every invalid name or value (INVALID_CONFIG on the wire).
var ErrInvalid = errors.New("invalid config")

// ErrUnknown is an unknown config name.
var ErrUnknown = errors.New("unknown config")

// Type is a config's value type, numbered as DescribeConfigs v3+ reports it.
type Type int8

const (
	TypeUnknown  Type = 0
	TypeBoolean  Type = 1
	TypeString   Type = 2
	TypeInt      Type = 3
	TypeShort    Type = 4
	TypeLong     Type = 5
	TypeDouble   Type = 6
	TypeList     Type = 7
	TypeClass    Type = 8
	TypePassword Type = 9
)

// Source is where a value came from, numbered as DescribeConfigs reports it.
type Source int8

const (
	SourceUnknown              Source = 0
	SourceDynamicTopic         Source = 1
	SourceDynamicBroker        Source = 2
	SourceDynamicDefaultBroker Source = 3
	SourceStaticBroker         Source = 4
	SourceDefault              Source = 5
)

// Def is one config's definition.
type Def struct {
	Name string
	// BrokerName is the broker-level default of a topic config
	// (segment.bytes -> log.segment.bytes); empty for broker-only configs.
	BrokerName string
	Type       Type
	Default    string
	Doc        string
	Sensitive  bool
	// Topic is true for per-topic configs (DescribeConfigs on a topic lists them).
	Topic bool
	// Dynamic is true for broker configs AlterConfigs may change at run time.
	Dynamic  bool
	Validate func(value string) error
}

// Synonym is one layer behind a value (DescribeConfigs include_synonyms).
type Synonym struct {
	Name   string
	Value  string
	Source Source
}

// Value is one resolved config.
type Value struct {
	Def
	Value    string
	Source   Source
	ReadOnly bool
	Synonyms []Synonym
}

// Lookup finds a topic or broker config by name.
func Lookup(name string) (Def, bool) { panic("config.Lookup: not implemented") }

// TopicDefs lists every topic config, sorted by name.
func TopicDefs() []Def { panic("not implemented") }

// BrokerDefs lists every broker config, sorted by name.
func BrokerDefs() []Def { panic("not implemented") }

// LoadOptions are the layers of a broker's static configuration.
type LoadOptions struct {
	File  string            // YAML: a map of config name to value; "" = none
	Env   []string          // os.Environ(); TIERCEL_LOG_RETENTION_MS -> log.retention.ms
	Sets  []string          // --set key=value
	Flags map[string]string // explicit flags already mapped to config names
}

// Broker is a broker's configuration: static layers plus dynamic overrides.
// Safe for concurrent use.
type Broker struct{}

// Load builds the static broker configuration and validates every value.
func Load(opts LoadOptions) (*Broker, error) { panic("not implemented") }

// Get returns the effective value of a broker config.
func (b *Broker) Get(name string) string { panic("not implemented") }

// Int64 returns a numeric broker config.
func (b *Broker) Int64(name string) int64 { panic("not implemented") }

// Bool returns a boolean broker config.
func (b *Broker) Bool(name string) bool { panic("not implemented") }

// SetDynamic replaces the dynamic broker overrides (validated first).
func (b *Broker) SetDynamic(values map[string]string) error { panic("not implemented") }

// Dynamic returns the dynamic broker overrides.
func (b *Broker) Dynamic() map[string]string { panic("not implemented") }

// Describe lists every broker config with its value and source.
func (b *Broker) Describe() []Value { panic("not implemented") }

// Topic resolves a topic's configs: overrides > broker (dynamic, static) > defaults.
func (b *Broker) Topic(overrides map[string]string) []Value { panic("not implemented") }

// TopicValue returns one resolved topic config value.
func (b *Broker) TopicValue(overrides map[string]string, name string) string {
	panic("not implemented")
}

// ValidateTopic checks topic overrides: known names, valid values.
func ValidateTopic(overrides map[string]string) error { panic("not implemented") }
