// Command golibcni times CNI calls the way a Go runtime makes them: containernetworking/cni's
// libcni (AddNetworkList / DelNetworkList, each plugin of the list exec'd as a process), with the
// pod's port mappings and bandwidth as capability arguments. bench/chain.bench.ts builds and runs
// it; every time is measured here, around the libcni call only (namespaces are made before).
//
// Each side is a plugin dir and a conflist file; the sides run interleaved (their order alternates
// from one iteration to the next). Two phases:
//
//   - sequential: n pods (after warmup ones), one at a time: ADD of the list, then its DEL, each
//     timed;
//   - burst: rounds times per side, `burst` pods ADDed at once (one goroutine each), then DELeted
//     at once; the wall time of each.
//
// For example:
//
//	golibcni -tag ckc123 -cache-dir DIR -n 15 -warmup 2 -burst 0 \
//	  -side reference=/usr/lib/cni:ref.conflist -side daemon=DIR:ck.conflist
//
// Each plugin process is timed too (libcni's exec, wrapped): where a list's time goes.
//
// Pods' network namespaces are made with `ip netns add <tag>-<side><i>` before a timed part and
// deleted after it (and at exit), so run this only in a private network namespace. libcni's result
// cache goes to <cache-dir>/<side>, never /var/lib/cni.
//
// Output: one JSON object on stdout, {"seq": {side: {"add": [ms...], "del": [ms...]}}, "burst":
// {side: ...}, "calls": {"seq"|"burst": {side: {"bridge ADD": [ms...], ...}}}} (a phase that did
// not run is left out); on failure a message on stderr and exit status 1.
//
// Built in GOPATH mode against Debian's golang-github-appc-cni-dev (libcni):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o golibcni main.go
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// timedExec is libcni's default exec, timing each plugin process by type and verb while a
// phase records (calls set).
type timedExec struct {
	invoke.DefaultExec
	mu    sync.Mutex
	calls map[string][]float64
}

func (e *timedExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	t0 := time.Now()
	out, err := e.DefaultExec.ExecPlugin(ctx, pluginPath, stdin, environ)
	d := time.Since(t0)
	verb := ""
	for _, kv := range environ {
		if strings.HasPrefix(kv, "CNI_COMMAND=") {
			verb = kv[len("CNI_COMMAND="):]
		}
	}
	e.mu.Lock()
	if e.calls != nil {
		k := filepath.Base(pluginPath) + " " + verb
		e.calls[k] = append(e.calls[k], ms(d))
	}
	e.mu.Unlock()
	return out, err
}

// record starts (a fresh map) or stops (nil) recording, and returns what was recorded.
func (e *timedExec) record(on bool) map[string][]float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := e.calls
	e.calls = nil
	if on {
		e.calls = map[string][]float64{}
	}
	return was
}

// side is one set of plugins under test.
type side struct {
	name string
	cni  *libcni.CNIConfig
	exec *timedExec
	list *libcni.NetworkConfigList
	// portBase keeps the sides' host ports apart
	portBase int
}

// times are one side's measurements, in milliseconds.
type times struct {
	Add []float64 `json:"add"`
	Del []float64 `json:"del"`
}

type sideFlags []string

func (s *sideFlags) String() string     { return strings.Join(*s, " ") }
func (s *sideFlags) Set(v string) error { *s = append(*s, v); return nil }

// made holds the namespaces this run created and has not deleted yet.
var (
	madeMu sync.Mutex
	made   = map[string]bool{}
)

func addNetns(name string) (string, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	madeMu.Lock()
	made[name] = true
	madeMu.Unlock()
	return "/run/netns/" + name, nil
}

func delNetns(name string) {
	_ = exec.Command("ip", "netns", "del", name).Run()
	madeMu.Lock()
	delete(made, name)
	madeMu.Unlock()
}

func cleanup() {
	madeMu.Lock()
	names := make([]string, 0, len(made))
	for n := range made {
		names = append(names, n)
	}
	madeMu.Unlock()
	for _, n := range names {
		delNetns(n)
	}
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "golibcni: "+format+"\n", a...)
	cleanup()
	os.Exit(1)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runtimeConf is what a runtime passes for one pod: its id, netns, ifname, and the capability
// arguments (libcni hands each plugin the ones its config declares in "capabilities").
func runtimeConf(id, netns string, hostPort int) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       netns,
		IfName:      "eth0",
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "bench"}, {"K8S_POD_NAME", id}},
		CapabilityArgs: map[string]interface{}{
			"portMappings": []map[string]interface{}{{"hostPort": hostPort, "containerPort": 80, "protocol": "tcp"}},
			"bandwidth":    map[string]interface{}{"ingressRate": 100000000, "ingressBurst": 1000000, "egressRate": 100000000, "egressBurst": 1000000},
		},
	}
}

// order alternates the sides from one iteration to the next.
func order(sides []*side, i int) []*side {
	if i%2 == 0 {
		return sides
	}
	r := make([]*side, len(sides))
	for j, s := range sides {
		r[len(sides)-1-j] = s
	}
	return r
}

// sequential: one pod at a time, ADD then DEL, each timed.
func sequential(ctx context.Context, tag string, sides []*side, warmup, n int) map[string]*times {
	out := map[string]*times{}
	for _, s := range sides {
		out[s.name] = &times{Add: []float64{}, Del: []float64{}}
	}
	for i := 0; i < warmup+n; i++ {
		for _, s := range order(sides, i) {
			if i == warmup {
				s.exec.record(true)
			}
			name := fmt.Sprintf("%s-%s%d", tag, s.name[:1], i)
			netns, err := addNetns(name)
			if err != nil {
				fail("%v", err)
			}
			rt := runtimeConf(name, netns, s.portBase+i)
			t0 := time.Now()
			if _, err := s.cni.AddNetworkList(ctx, s.list, rt); err != nil {
				fail("%s ADD %s: %v", s.name, name, err)
			}
			t1 := time.Now()
			if err := s.cni.DelNetworkList(ctx, s.list, rt); err != nil {
				fail("%s DEL %s: %v", s.name, name, err)
			}
			t2 := time.Now()
			delNetns(name)
			if i >= warmup {
				out[s.name].Add = append(out[s.name].Add, ms(t1.Sub(t0)))
				out[s.name].Del = append(out[s.name].Del, ms(t2.Sub(t1)))
			}
		}
	}
	return out
}

// all runs f for every pod at once (one goroutine each) and returns the wall time and the first error.
func all(rts []*libcni.RuntimeConf, f func(rt *libcni.RuntimeConf) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(rts))
	t0 := time.Now()
	for i, rt := range rts {
		wg.Add(1)
		go func(i int, rt *libcni.RuntimeConf) {
			defer wg.Done()
			errs[i] = f(rt)
		}(i, rt)
	}
	wg.Wait()
	d := time.Since(t0)
	for i, err := range errs {
		if err != nil {
			return d, fmt.Errorf("pod %s: %w", rts[i].ContainerID, err)
		}
	}
	return d, nil
}

// bursts: k pods ADDed at once, then DELeted at once, rounds times per side.
func bursts(ctx context.Context, tag string, sides []*side, k, rounds int) map[string]*times {
	out := map[string]*times{}
	for _, s := range sides {
		out[s.name] = &times{Add: []float64{}, Del: []float64{}}
	}
	for _, s := range sides {
		s.exec.record(true)
	}
	for r := 0; r < rounds; r++ {
		for _, s := range order(sides, r) {
			rts := make([]*libcni.RuntimeConf, k)
			for i := range rts {
				name := fmt.Sprintf("%s-b%s%d-%d", tag, s.name[:1], r, i)
				netns, err := addNetns(name)
				if err != nil {
					fail("%v", err)
				}
				rts[i] = runtimeConf(name, netns, s.portBase+1000+i)
			}
			add, err := all(rts, func(rt *libcni.RuntimeConf) error {
				_, err := s.cni.AddNetworkList(ctx, s.list, rt)
				return err
			})
			if err != nil {
				fail("%s burst ADD: %v", s.name, err)
			}
			del, err := all(rts, func(rt *libcni.RuntimeConf) error { return s.cni.DelNetworkList(ctx, s.list, rt) })
			if err != nil {
				fail("%s burst DEL: %v", s.name, err)
			}
			for _, rt := range rts {
				delNetns(rt.ContainerID)
			}
			out[s.name].Add = append(out[s.name].Add, ms(add))
			out[s.name].Del = append(out[s.name].Del, ms(del))
		}
	}
	return out
}

func main() {
	var sideArgs sideFlags
	tag := flag.String("tag", "", "prefix of the namespaces made (unique to the run)")
	cacheDir := flag.String("cache-dir", "", "libcni's result cache (a subdirectory per side)")
	n := flag.Int("n", 15, "sequential pods per side (after the warm-up)")
	warmup := flag.Int("warmup", 2, "sequential pods per side not counted")
	k := flag.Int("burst", 50, "pods per burst (0: none)")
	rounds := flag.Int("rounds", 2, "bursts per side")
	burstSides := flag.String("burst-sides", "", "the sides that run bursts, comma-separated (default all)")
	timeout := flag.Duration("timeout", 10*time.Minute, "for the whole run")
	flag.Var(&sideArgs, "side", "NAME=PLUGIN_DIR:CONFLIST (repeated; names start with distinct letters)")
	flag.Parse()
	if *tag == "" || *cacheDir == "" || len(sideArgs) == 0 {
		fail("-tag, -cache-dir and at least one -side are required")
	}

	var sides []*side
	initials := map[byte]bool{}
	for i, a := range sideArgs {
		name, rest, ok1 := strings.Cut(a, "=")
		dir, conf, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || name == "" || initials[name[0]] {
			fail("-side %q: want NAME=PLUGIN_DIR:CONFLIST, names with distinct first letters", a)
		}
		initials[name[0]] = true
		list, err := libcni.ConfListFromFile(conf)
		if err != nil {
			fail("%s: %v", conf, err)
		}
		ex := &timedExec{DefaultExec: invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}}
		cni := libcni.NewCNIConfigWithCacheDir([]string{dir}, filepath.Join(*cacheDir, name), ex)
		sides = append(sides, &side{name: name, cni: cni, exec: ex, list: list, portBase: 20000 + 2000*i})
	}
	var bs []*side
	for _, s := range sides {
		if *burstSides == "" || strings.Contains(","+*burstSides+",", ","+s.name+",") {
			bs = append(bs, s)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		fail("%v", <-sig)
	}()
	result := map[string]interface{}{}
	calls := map[string]map[string]map[string][]float64{}
	collect := func(phase string, ss []*side) {
		calls[phase] = map[string]map[string][]float64{}
		for _, s := range ss {
			calls[phase][s.name] = s.exec.record(false)
		}
	}
	if *n > 0 {
		result["seq"] = sequential(ctx, *tag, sides, *warmup, *n)
		collect("seq", sides)
	}
	if *k > 0 && *rounds > 0 {
		result["burst"] = bursts(ctx, *tag, bs, *k, *rounds)
		collect("burst", bs)
	}
	result["calls"] = calls
	cleanup()
	b, err := json.Marshal(result)
	if err != nil {
		fail("%v", err)
	}
	fmt.Println(string(b))
}
