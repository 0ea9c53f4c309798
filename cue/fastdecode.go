package cue

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

// decodeJSON decodes o into x as the CUE path's decode (decode.go) does
// a CUE value: field by field by the json tags, a type that decodes
// itself from JSON given its JSON, one that decodes itself from text
// given the string. It was json.Unmarshal of o encoded, at a fifth of
// the fast path's time.
func decodeJSON(o jobj, x any) error {
	return decodeFast(map[string]any(o), reflect.ValueOf(x).Elem(), "")
}

func decodeFast(v any, x reflect.Value, path string) error {
	if o, ok := v.(jobj); ok {
		v = map[string]any(o)
	}
	if done, err := decodeUnmarshaler(v, x, path); done {
		return err
	}
	switch x.Kind() {
	case reflect.Pointer:
		e := reflect.New(x.Type().Elem())
		if err := decodeFast(v, e.Elem(), path); err != nil {
			return err
		}
		x.Set(e)
		return nil
	case reflect.Struct:
		return decodeFastStruct(v, x, path)
	case reflect.Map:
		return decodeFastMap(v, x, path)
	case reflect.Slice:
		return decodeFastSlice(v, x, path)
	}
	return decodeFastScalar(v, x, path)
}

// decodeUnmarshaler decodes into a type with its own UnmarshalJSON or
// UnmarshalText; done is false for any other type.
func decodeUnmarshaler(v any, x reflect.Value, path string) (done bool, err error) {
	if !x.CanAddr() {
		return false, nil
	}
	p := x.Addr()
	switch {
	case p.Type().Implements(jsonUnmarshaler):
		b, err := appendJSON(nil, v)
		if err != nil {
			return true, wrapPath(path, err)
		}
		return true, wrapPath(path, p.Interface().(json.Unmarshaler).UnmarshalJSON(b))
	case p.Type().Implements(textUnmarshaler):
		s, ok := v.(string)
		if !ok {
			return true, fmt.Errorf("%s: %T is not a string", path, v)
		}
		return true, wrapPath(path, p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)))
	}
	return false, nil
}

// decodeFastStruct decodes an object into a struct, field by field by
// the json tags.
func decodeFastStruct(v any, x reflect.Value, path string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: %T is not a struct", path, v)
	}
	for _, f := range structFields(x.Type()) {
		fv, ok := m[f.name]
		if !ok {
			continue
		}
		if err := decodeFast(fv, x.Field(f.index), joinPath(path, f.name)); err != nil {
			return err
		}
	}
	return nil
}

func decodeFastMap(v any, x reflect.Value, path string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: %T is not a struct", path, v)
	}
	out := reflect.MakeMapWithSize(x.Type(), len(m))
	for k, ev := range m {
		e := reflect.New(x.Type().Elem()).Elem()
		if err := decodeFast(ev, e, joinPath(path, k)); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k).Convert(x.Type().Key()), e)
	}
	x.Set(out)
	return nil
}

func decodeFastSlice(v any, x reflect.Value, path string) error {
	l, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: %T is not a list", path, v)
	}
	out := reflect.MakeSlice(x.Type(), len(l), len(l))
	for i, ev := range l {
		if err := decodeFast(ev, out.Index(i), fmt.Sprintf("%s.%d", path, i)); err != nil {
			return err
		}
	}
	x.Set(out)
	return nil
}

// decodeFastScalar decodes a string, a bool or a number.
func decodeFastScalar(v any, x reflect.Value, path string) error {
	switch x.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T is not a string", path, v)
		}
		x.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%s: %T is not a bool", path, v)
		}
		x.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: %T is not a number", path, v)
		}
		i, err := n.Int64()
		if err != nil {
			return wrapPath(path, err)
		}
		x.SetInt(i)
	case reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: %T is not a number", path, v)
		}
		f, err := n.Float64()
		if err != nil {
			return wrapPath(path, err)
		}
		x.SetFloat(f)
	default:
		return fmt.Errorf("%s: cannot decode into %s", path, x.Type())
	}
	return nil
}

// appendJSON encodes the values the checks build; it is json.Marshal
// without reflection (which was a fifth of the fast path's time).
func appendJSON(b []byte, v any) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case jobj:
		return appendJSON(b, map[string]any(v))
	case map[string]any:
		b = append(b, '{')
		first := true
		for k, e := range v {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, k)
			b = append(b, ':')
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case string:
		return appendJSONString(b, v), nil
	case json.Number:
		return append(b, v...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	}
	return nil, fmt.Errorf("encode %T", v)
}

// appendJSONString quotes s as JSON does (the files are valid UTF-8).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
