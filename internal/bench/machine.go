package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Machine describes where a run took place, for its results to be read
// against: absolute numbers drift with the machine, and its processor
// model tells which of a cloud's machines a run landed on.
func Machine(cfg Config) string {
	store := "embedded SQLite"
	if cfg.Database != "" {
		store = "PostgreSQL"
	}
	return fmt.Sprintf("%s, %d CPUs, %s/%s, %s; store: %s", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), store)
}

// cpuModel is the processor's model name as Linux gives it, or
// "unknown processor" elsewhere.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown processor"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown processor"
}
