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

// LoadOptions are the layers of a broker's static configuration.
type LoadOptions struct {
	File  string            // YAML: a map of config name to value; "" = none
	Env   []string          // os.Environ(); TIERCEL_LOG_RETENTION_MS -> log.retention.ms
	Sets  []string          // --set key=value
	Flags map[string]string // explicit flags already mapped to config names
}
