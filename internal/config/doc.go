package config

import (
	"fmt"
	"strings"
)

var typeNames = map[Type]string{TypeBoolean: "boolean", TypeString: "string", TypeInt: "int", TypeShort: "short", TypeLong: "long", TypeDouble: "double", TypeList: "list", TypeClass: "class", TypePassword: "password"}

// Markdown renders every config as the tables of docs/configuration.md,
// so the document is generated from the registry and cannot drift.
func Markdown() string {
	var b strings.Builder
	b.WriteString("# Configuration\n\nGenerated from `internal/config` (`go test ./internal/config -run TestConfigurationDoc -update` rewrites it).\n")
	b.WriteString("Names, types and defaults are Kafka's unless the description says Tiercel.\n\n")
	b.WriteString("Precedence, highest first: `tiercel serve` flags, `--set key=value`, `TIERCEL_*` environment variables (`TIERCEL_LOG_RETENTION_MS` sets `log.retention.ms`), the YAML file given with `--config` (flat `name: value`, or nested maps joined with dots), defaults.\n\n")
	b.WriteString("## Topic configs\n\nSet per topic (CreateTopics, `tiercel topic create --config`, IncrementalAlterConfigs); the broker config in the second column is the default for topics that do not set it.\n\n")
	b.WriteString("| name | broker default from | type | default | description |\n| --- | --- | --- | --- | --- |\n")
	for _, d := range TopicDefs() {
		fmt.Fprintf(&b, "| `%s` | %s | %s | `%s` | %s |\n", d.Name, code(d.BrokerName), typeNames[d.Type], d.Default, d.Doc)
	}
	b.WriteString("\n## Broker configs\n\nDynamic ones can be changed at run time with AlterConfigs / IncrementalAlterConfigs on the broker resource; they are stored in the data directory.\n\n")
	b.WriteString("| name | type | default | dynamic | description |\n| --- | --- | --- | --- | --- |\n")
	for _, d := range BrokerDefs() {
		dyn := ""
		if d.Dynamic {
			dyn = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s |\n", d.Name, typeNames[d.Type], d.Default, dyn, d.Doc)
	}
	return b.String()
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}
