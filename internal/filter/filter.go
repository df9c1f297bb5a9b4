// Package filter compiles and runs subscription filter expressions
// (expr-lang) over an event: id, type, source, occurred_at and data.
package filter

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/heraldhq/herald/internal/exprguard"
)

// MaxLength bounds a filter's source text.
const MaxLength = 2048

// maxNodes bounds a filter's size after parsing, so no saved filter can be
// expensive to run on every publish.
const maxNodes = 400

// maxValue bounds every value a filter builds (a string, a list), so a short
// filter cannot make gigabytes on every publish: room for toJSON(data) of
// the largest event.
const maxValue = 1 << 20

// Program is a compiled filter.
type Program struct {
	prog *vm.Program
}

// Env is what a filter sees of an event.
type Env struct {
	ID         string
	Type       string
	Source     string
	OccurredAt time.Time
	Data       any
}

func (e Env) vars() map[string]any {
	return map[string]any{
		"id":          e.ID,
		"type":        e.Type,
		"source":      e.Source,
		"occurred_at": e.OccurredAt.UTC().Format(time.RFC3339Nano),
		"data":        e.Data,
	}
}

var compileEnv = Env{Data: map[string]any{}}.vars()

// Compile checks and compiles a filter; the error says what is wrong.
func Compile(src string) (*Program, error) {
	if len(src) > MaxLength {
		return nil, fmt.Errorf("is %d characters long; at most %d are allowed", len(src), MaxLength)
	}
	opts := append([]expr.Option{expr.Env(compileEnv), expr.AsBool(), expr.MaxNodes(maxNodes)}, exprguard.Options(maxValue)...)
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("does not compile: %v (fields: id, type, source, occurred_at, data.<field>; e.g. data.total_amount >= 5000 && source != \"admin\")", err)
	}
	return &Program{prog: p}, nil
}

// Match runs the filter. A run-time error (a missing field compared with a
// number, say) is returned with false: callers count it as no match.
func (p *Program) Match(env Env) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("filter panicked: %v", r)
		}
	}()
	out, err := expr.Run(p.prog, env.vars())
	if err != nil {
		return false, err
	}
	b, isBool := out.(bool)
	if !isBool {
		return false, errors.New("filter did not return a boolean")
	}
	return b, nil
}

// Cache keeps compiled programs by source text, bounded in size.
type Cache struct {
	mu    sync.Mutex
	progs map[string]*Program
}

const cacheSize = 4096

// Get returns the compiled program for src, compiling it on first use.
func (c *Cache) Get(src string) (*Program, error) {
	c.mu.Lock()
	p, ok := c.progs[src]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := Compile(src)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.progs == nil || len(c.progs) >= cacheSize {
		c.progs = make(map[string]*Program)
	}
	c.progs[src] = p
	c.mu.Unlock()
	return p, nil
}
