package metalog

import (
	"encoding/json"
	"errors"
	"reflect"
)

func unmarshal(data []byte, e *Entry) error { return json.Unmarshal(data, e) }

func errorsIsStale(err error) bool { return errors.Is(err, ErrStale) }

func sameState(a, b State) bool { return reflect.DeepEqual(a, b) }
