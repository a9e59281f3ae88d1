package command_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	// jsonpath FILE PATH WANT: FILE parses as JSON and the value at PATH
	// (keys and array indices joined by dots; "@len" after a path counts the
	// elements of the array there) prints as WANT.
	scriptCmds["jsonpath"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 3 {
			ts.Fatalf("usage: jsonpath FILE PATH WANT")
		}
		data, err := os.ReadFile(ts.MkAbs(args[0]))
		ts.Check(err)
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			ts.Fatalf("%s: %v", args[0], err)
		}
		got, err := jsonAt(v, args[1])
		if err != nil {
			ts.Fatalf("%s: %v", args[0], err)
		}
		if (got == args[2]) == neg {
			ts.Fatalf("%s: %s is %q, want %s%q", args[0], args[1], got, map[bool]string{true: "not ", false: ""}[neg], args[2])
		}
	}
}

func jsonAt(v any, path string) (string, error) {
	for _, key := range strings.Split(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[key]
			if !ok {
				return "", fmt.Errorf("no key %q in %s", key, path)
			}
			v = next
		case []any:
			if key == "@len" {
				return strconv.Itoa(len(node)), nil
			}
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return "", fmt.Errorf("no element %q in %s", key, path)
			}
			v = node[i]
		default:
			return "", fmt.Errorf("%s: %q is inside a %T", path, key, v)
		}
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	out, err := json.Marshal(v)
	return string(out), err
}
