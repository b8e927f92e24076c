package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.yaml")
	os.WriteFile(file, []byte("num.partitions: 2\nlog:\n  segment:\n    bytes: 5000\nlog.retention.ms: 111\n"), 0o644)
	b, err := Load(LoadOptions{
		File:  file,
		Env:   []string{"TIERCEL_NUM_PARTITIONS=3", "TIERCEL_LOG_RETENTION_MS=222", "HOME=/x", "TIERCEL_NOT_A_CONFIG=1"},
		Sets:  []string{"num.partitions=4"},
		Flags: map[string]string{"log.dirs": "/d"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"num.partitions": "4", "log.segment.bytes": "5000", "log.retention.ms": "222", "log.dirs": "/d", "delete.topic.enable": "true"} {
		if got := b.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestLoadErrorsNameKeyAndSource(t *testing.T) {
	cases := []struct {
		opts LoadOptions
		want []string
		err  error
	}{
		{LoadOptions{Sets: []string{"no.such=1"}}, []string{"--set", `"no.such"`}, ErrUnknown},
		{LoadOptions{Sets: []string{"num.partitions=x"}}, []string{"num.partitions", `"x"`, "whole number"}, ErrInvalid},
		{LoadOptions{Sets: []string{"retention.ms=5"}}, []string{"topic config", "log.retention.ms"}, ErrUnknown},
		{LoadOptions{Env: []string{"TIERCEL_NUM_PARTITIONS=0"}}, []string{"TIERCEL_NUM_PARTITIONS", "at least 1"}, ErrInvalid},
		{LoadOptions{Sets: []string{"listeners=nonsense"}}, []string{"listeners", "host:port"}, ErrInvalid},
		{LoadOptions{Sets: []string{"novalue"}}, []string{"key=value"}, ErrInvalid},
	}
	for _, tc := range cases {
		_, err := Load(tc.opts)
		if !errors.Is(err, tc.err) {
			t.Errorf("%+v: got %v, want %v", tc.opts, err, tc.err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	}
}

func TestRetentionHoursMinutesMs(t *testing.T) {
	b, _ := Load(LoadOptions{Sets: []string{"log.retention.hours=2"}})
	if got := b.TopicValue(nil, "retention.ms"); got != "7200000" {
		t.Fatalf("hours: %s", got)
	}
	b, _ = Load(LoadOptions{Sets: []string{"log.retention.hours=2", "log.retention.minutes=3"}})
	if got := b.TopicValue(nil, "retention.ms"); got != "180000" {
		t.Fatalf("minutes over hours: %s", got)
	}
	b, _ = Load(LoadOptions{Sets: []string{"log.retention.minutes=3", "log.retention.ms=5"}})
	if got := b.TopicValue(nil, "retention.ms"); got != "5" {
		t.Fatalf("ms over minutes: %s", got)
	}
	b, _ = Load(LoadOptions{})
	if got := b.TopicValue(nil, "retention.ms"); got != "604800000" {
		t.Fatalf("default: %s", got)
	}
}

func TestTopicResolutionSources(t *testing.T) {
	b, _ := Load(LoadOptions{Sets: []string{"log.segment.bytes=2000"}})
	if err := b.SetDynamic(map[string]string{"log.retention.bytes": "99"}); err != nil {
		t.Fatal(err)
	}
	vals := map[string]Value{}
	for _, v := range b.Topic(map[string]string{"cleanup.policy": "compact"}) {
		vals[v.Name] = v
	}
	check := func(name, value string, src Source, synonyms int) {
		t.Helper()
		v := vals[name]
		if v.Value != value || v.Source != src || len(v.Synonyms) != synonyms {
			t.Errorf("%s: %q source %d synonyms %+v; want %q source %d with %d synonyms", name, v.Value, v.Source, v.Synonyms, value, src, synonyms)
		}
	}
	check("cleanup.policy", "compact", SourceDynamicTopic, 2)
	check("segment.bytes", "2000", SourceStaticBroker, 2)
	check("retention.bytes", "99", SourceDynamicBroker, 2)
	check("max.message.bytes", "1048588", SourceDefault, 1)
	if len(vals) != len(topicDefs) {
		t.Errorf("%d topic configs listed, want every one (%d)", len(vals), len(topicDefs))
	}
}

func TestDynamicAndValidateTopic(t *testing.T) {
	b, _ := Load(LoadOptions{})
	if err := b.SetDynamic(map[string]string{"log.dirs": "/x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("read-only broker config accepted dynamically: %v", err)
	}
	if err := b.SetDynamic(map[string]string{"num.partitions": "0"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid dynamic value: %v", err)
	}
	if err := ValidateTopic(map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "-1"}); err != nil {
		t.Errorf("valid overrides: %v", err)
	}
	for _, bad := range []map[string]string{{"cleanup.policy": "shred"}, {"no.such": "1"}, {"message.timestamp.type": "Now"}, {"segment.bytes": "1"}} {
		if err := ValidateTopic(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := ParseListener("PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Error(err)
	}
	if _, err := ParseListener("SSL://h:1"); err == nil {
		t.Error("SSL listener accepted")
	}
}

func TestDescribeBroker(t *testing.T) {
	b, _ := Load(LoadOptions{Sets: []string{"num.partitions=3"}})
	found := false
	for _, v := range b.Describe() {
		if v.Name == "num.partitions" {
			found = true
			if v.Value != "3" || v.Source != SourceStaticBroker || v.ReadOnly {
				t.Errorf("num.partitions described as %+v", v)
			}
		}
		if v.Name == "log.dirs" && !v.ReadOnly {
			t.Error("log.dirs should be read-only")
		}
	}
	if !found {
		t.Error("num.partitions not described")
	}
}
