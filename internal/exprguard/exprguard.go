// Package exprguard bounds the values an expr-lang expression can build.
// expr's memory budget counts ranges and arrays, not the bytes of strings,
// so "+" in a chain of lets, repeat, join, replace, toJSON or concat could
// otherwise make gigabytes from a short expression that a tenant saved,
// and take the server down for everyone. Sizes are checked before the work
// is done.
package exprguard

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"
)

// TooBigError says an expression would have built a value over Limit bytes.
type TooBigError struct{ Limit int }

func (e *TooBigError) Error() string {
	return fmt.Sprintf("the value would be over %d bytes", e.Limit)
}

// Options bound, to limit bytes, "+" and the builtins that can make a
// value much larger than their arguments. Pass them to expr.Compile.
func Options(limit int) []expr.Option {
	errTooBig := &TooBigError{Limit: limit}
	maxValue := limit
	tooBig := func(args []any) bool { return Size(args, maxValue) > maxValue }
	return []expr.Option{
		expr.Patch(addPatcher{}),
		expr.Function("__add", func(args ...any) (any, error) {
			a, b := args[0], args[1]
			if sa, ok := a.(string); ok {
				if sb, ok := b.(string); ok && len(sa)+len(sb) > maxValue {
					return nil, errTooBig
				}
			}
			if Size(a, maxValue)+Size(b, maxValue) > maxValue {
				return nil, errTooBig
			}
			return runtime.Add(a, b), nil
		}),
		guarded("repeat", func(args []any) bool {
			s, _ := args[0].(string)
			n := runtime.ToInt(args[1])
			return n > 0 && len(s) > 0 && n > maxValue/len(s)
		}, errTooBig),
		guarded("join", func(args []any) bool {
			glue := 0
			if len(args) == 2 {
				if g, ok := args[1].(string); ok {
					glue = len(g)
				}
			}
			n := reflect.ValueOf(args[0])
			if n.Kind() == reflect.Slice && glue > 0 && n.Len() > maxValue/glue {
				return true
			}
			return Size(args[0], maxValue)+n.Len()*glue > maxValue
		}, errTooBig),
		guarded("replace", func(args []any) bool {
			s, _ := args[0].(string)
			old, _ := args[1].(string)
			repl, _ := args[2].(string)
			n := strings.Count(s, old)
			return len(repl) > 0 && n > 0 && (n > maxValue/len(repl) || len(s)+n*len(repl) > maxValue)
		}, errTooBig),
		guarded("toJSON", tooBig, errTooBig),
		guarded("string", tooBig, errTooBig),
		guarded("concat", tooBig, errTooBig),
		guarded("flatten", tooBig, errTooBig),
	}
}

// guarded replaces builtin name by one that first asks over whether its
// result would be too big.
func guarded(name string, over func(args []any) bool, errTooBig error) expr.Option {
	return func(c *conf.Config) {
		orig := c.Builtins[name]
		c.Functions[name] = &builtin.Function{
			Name: name, Types: orig.Types, Validate: orig.Validate, Deref: orig.Deref,
			Func: func(args ...any) (any, error) {
				if over(args) {
					return nil, fmt.Errorf("%s: %w", name, errTooBig)
				}
				switch {
				case orig.Func != nil:
					return orig.Func(args...)
				case orig.Safe != nil:
					v, _, err := orig.Safe(args...)
					return v, err
				case orig.Fast != nil && len(args) == 1:
					return orig.Fast(args[0]), nil
				}
				return nil, errors.New(name + ": unsupported call")
			},
		}
	}
}

// addPatcher turns every a + b into __add(a, b).
type addPatcher struct{}

func (addPatcher) Visit(node *ast.Node) {
	if b, ok := (*node).(*ast.BinaryNode); ok && b.Operator == "+" {
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__add"}, Arguments: []ast.Node{b.Left, b.Right}})
	}
}

// Size estimates the bytes v takes written out, stopping once past limit,
// so its cost is bounded whatever v is (an array may hold one large value
// many times).
func Size(v any, limit int) int {
	n := 0
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if n > limit {
			return
		}
		switch v.Kind() {
		case reflect.Interface, reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			} else {
				n += 4
			}
		case reflect.String:
			n += v.Len() + 2
		case reflect.Slice, reflect.Array:
			n += 2
			for i := 0; i < v.Len() && n <= limit; i++ {
				n++
				walk(v.Index(i))
			}
		case reflect.Map:
			n += 2
			it := v.MapRange()
			for it.Next() && n <= limit {
				n += 2
				walk(it.Key())
				walk(it.Value())
			}
		default:
			n += 8
		}
	}
	walk(reflect.ValueOf(v))
	return n
}
