package cue

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"

	cuelang "cuelang.org/go/cue"
)

// decode fills the Go value x points to from v, field by field, following
// the json tags of berth's types.
//
// It exists for speed: Value.MarshalJSON and Value.Decode both iterate a
// struct with Value.Fields, which sorts the fields topologically on every
// call; looking up the fields the Go type names does not. An optional field
// the configuration does not set is not found by LookupPath, so it stays
// the zero value, as it would through JSON. v must already be validated as
// concrete.
func decode(v cuelang.Value, x any) error {
	rv := reflect.ValueOf(x)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decode: want a non-nil pointer, got %T", x)
	}
	return decodeValue(v, rv.Elem(), "")
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeValue decodes v into x. The scalar accessors and List and Fields
// resolve defaults themselves; only LookupPath needs it done first. Each
// call into the cue API costs an evaluation context, so there are few.
func decodeValue(v cuelang.Value, x reflect.Value, path string) error {
	if done, err := decodeValueUnmarshaler(v, x, path); done {
		return err
	}
	switch x.Kind() {
	case reflect.Pointer:
		e := reflect.New(x.Type().Elem())
		if err := decodeValue(v, e.Elem(), path); err != nil {
			return err
		}
		x.Set(e)
		return nil
	case reflect.Struct:
		v, _ = v.Default()
		for _, f := range structFields(x.Type()) {
			fv := v.LookupPath(f.path)
			if !fv.Exists() {
				continue
			}
			if err := decodeValue(fv, x.Field(f.index), joinPath(path, f.name)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		return decodeValueMap(v, x, path)
	case reflect.Slice:
		return decodeValueSlice(v, x, path)
	}
	return decodeValueScalar(v, x, path)
}

// decodeValueUnmarshaler decodes into a type with its own UnmarshalJSON
// or UnmarshalText; done is false for any other type.
func decodeValueUnmarshaler(v cuelang.Value, x reflect.Value, path string) (done bool, err error) {
	if !x.CanAddr() {
		return false, nil
	}
	p := x.Addr()
	switch {
	case p.Type().Implements(jsonUnmarshaler):
		b, err := v.MarshalJSON()
		if err != nil {
			return true, err
		}
		return true, wrapPath(path, p.Interface().(json.Unmarshaler).UnmarshalJSON(b))
	case p.Type().Implements(textUnmarshaler):
		s, err := v.String()
		if err != nil {
			return true, wrapPath(path, err)
		}
		return true, wrapPath(path, p.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)))
	}
	return false, nil
}

func decodeValueMap(v cuelang.Value, x reflect.Value, path string) error {
	it, err := v.Fields()
	if err != nil {
		return wrapPath(path, err)
	}
	m := reflect.MakeMap(x.Type())
	for it.Next() {
		e := reflect.New(x.Type().Elem()).Elem()
		k := it.Selector().Unquoted()
		if err := decodeValue(it.Value(), e, joinPath(path, k)); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(k).Convert(x.Type().Key()), e)
	}
	x.Set(m)
	return nil
}

func decodeValueSlice(v cuelang.Value, x reflect.Value, path string) error {
	it, err := v.List()
	if err != nil {
		return wrapPath(path, err)
	}
	s := reflect.MakeSlice(x.Type(), 0, 0)
	for i := 0; it.Next(); i++ {
		e := reflect.New(x.Type().Elem()).Elem()
		if err := decodeValue(it.Value(), e, fmt.Sprintf("%s.%d", path, i)); err != nil {
			return err
		}
		s = reflect.Append(s, e)
	}
	x.Set(s)
	return nil
}

// decodeValueScalar decodes a string, a bool or a number.
func decodeValueScalar(v cuelang.Value, x reflect.Value, path string) error {
	switch x.Kind() {
	case reflect.String:
		s, err := v.String()
		if err != nil {
			return wrapPath(path, err)
		}
		x.SetString(s)
	case reflect.Bool:
		b, err := v.Bool()
		if err != nil {
			return wrapPath(path, err)
		}
		x.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := v.Int64()
		if err != nil {
			return wrapPath(path, err)
		}
		x.SetInt(n)
	case reflect.Float64:
		f, err := v.Float64()
		if err != nil {
			return wrapPath(path, err)
		}
		x.SetFloat(f)
	default:
		return fmt.Errorf("%s: cannot decode into %s", path, x.Type())
	}
	return nil
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func wrapPath(path string, err error) error {
	if err == nil || path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

type field struct {
	name  string
	index int
	path  cuelang.Path
}

var fieldCache sync.Map // reflect.Type -> []field

// structFields lists the fields of t that have a json name, with the CUE
// path to look each up, built once per type.
func structFields(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, field{name: name, index: i, path: cuelang.MakePath(cuelang.Str(name))})
	}
	fieldCache.Store(t, fs)
	return fs
}
