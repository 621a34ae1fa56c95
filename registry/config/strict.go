package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeStrict decodes n into v, refusing keys v's type does not declare and
// keys given twice. Errors name the key path ("auth.ldap.url"), because a
// line number alone does not tell an operator which of three "url" keys is
// wrong.
//
// yaml's own KnownFields mode reports "field x not found in type
// config.LDAP", which names a Go type the operator never sees; this walk
// keeps the names of the file.
func decodeStrict(n *yaml.Node, v reflect.Value, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return decodeStrict(n.Content[0], v, path)
	case yaml.AliasNode:
		return decodeStrict(n.Alias, v, path)
	}
	if n.Tag == "!!null" {
		return nil // an empty key ("tls:") keeps the zero value
	}
	switch {
	case v.Type() == reflect.TypeFor[yaml.Node]():
		v.Set(reflect.ValueOf(*n))
		return nil
	case v.Type() == reflect.TypeFor[time.Duration]():
		var s string
		if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
			return &fieldError{Key: path, Value: nodeText(n), Msg: "not a duration; write it like 30s, 5m or 1h"}
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return &fieldError{Key: path, Value: s, Msg: "not a duration; write it like 30s, 5m or 1h"}
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeStrict(n, v.Elem(), path)
	case reflect.Struct:
		return decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &fieldError{Key: path, Value: nodeText(n), Msg: "must be a list (- item, or [a, b])"}
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := decodeStrict(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		// Pass-through sections (storage.s3 parameters) belong to the
		// driver that reads them; it validates its own keys.
		if n.Kind != yaml.MappingNode {
			return &fieldError{Key: path, Value: nodeText(n), Msg: "must be a mapping (key: value)"}
		}
		if err := checkDuplicates(n, path); err != nil {
			return err
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return &fieldError{Key: path, Msg: err.Error()}
		}
		return nil
	default:
		if n.Kind != yaml.ScalarNode {
			return &fieldError{Key: path, Msg: fmt.Sprintf("must be a single %s value, not a %s", kindName(v.Kind()), nodeKind(n))}
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return &fieldError{Key: path, Value: n.Value, Msg: fmt.Sprintf("not a %s", kindName(v.Kind()))}
		}
		return nil
	}
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return &fieldError{Key: orTop(path), Value: nodeText(n), Msg: "must be a mapping (key: value)"}
	}
	fields := map[string]int{}
	var names []string
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	if err := checkDuplicates(n, path); err != nil {
		return err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i].Value, n.Content[i+1]
		idx, ok := fields[key]
		if !ok {
			msg := "unknown key"
			for _, known := range names {
				if strings.EqualFold(known, key) {
					msg += fmt.Sprintf("; did you mean %s?", known)
					return &fieldError{Key: join(path, key), Msg: msg, Line: n.Content[i].Line}
				}
			}
			slices.Sort(names)
			msg += "; known keys here: " + strings.Join(names, ", ")
			return &fieldError{Key: join(path, key), Msg: msg, Line: n.Content[i].Line}
		}
		if err := decodeStrict(val, v.Field(idx), join(path, key)); err != nil {
			return err
		}
	}
	return nil
}

func checkDuplicates(n *yaml.Node, path string) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		if seen[key] {
			return &fieldError{Key: join(path, key), Msg: "given twice; keep one", Line: n.Content[i].Line}
		}
		seen[key] = true
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func nodeText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "whole number"
	case reflect.String:
		return "string"
	}
	return k.String()
}
