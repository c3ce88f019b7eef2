// Command promql evaluates PromQL expressions with Prometheus' own engine (github.com/prometheus/prometheus/promql)
// over a TSDB holding the series it is given: the tests' real evaluator for the PrometheusRule's alerts.
//
// Input (stdin, JSON): {"series": [{"labels": {"__name__": "m", "k": "v"}, "value": 1}], "at": [unix seconds...],
// "exprs": ["..."]}. Every series is sampled every "interval" seconds (default 60) from the first instant minus
// the lookback to the last, as a scrape of an unchanging published document would. Output (stdout, JSON): per
// instant, per expression, the result vector [{"labels": {...}, "value": v}] or {"error": "..."}.
//
// With -text it reads stdin as the Prometheus text exposition format with prometheus/common's classic parser
// (what node-exporter's textfile collector uses) and prints {family: {"type": T, "samples": N}}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
)

type input struct {
	Series []struct {
		Labels map[string]string `json:"labels"`
		Value  float64           `json:"value"`
	} `json:"series"`
	At       []int64  `json:"at"`
	Exprs    []string `json:"exprs"`
	Interval int64    `json:"interval"`
}

type sample struct {
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
}

type result struct {
	At     int64    `json:"at"`
	Expr   string   `json:"expr"`
	Vector []sample `json:"vector"`
	Error  string   `json:"error,omitempty"`
}

func main() {
	text := flag.Bool("text", false, "parse stdin with the classic text-format parser instead")
	flag.Parse()
	if *text {
		if err := parseText(); err != nil {
			fmt.Fprintln(os.Stderr, "promql:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "promql:", err)
		os.Exit(1)
	}
}

func run() error {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		return fmt.Errorf("reading input: %w", err)
	}
	if len(in.At) == 0 {
		return fmt.Errorf("no instants to evaluate at")
	}
	if in.Interval <= 0 {
		in.Interval = 60
	}
	dir, err := os.MkdirTemp("", "promql-eval-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = math.MaxInt64 / 2
	db, err := tsdb.Open(dir, nil, nil, opts, nil)
	if err != nil {
		return fmt.Errorf("opening the TSDB: %w", err)
	}
	defer db.Close()

	ats := append([]int64(nil), in.At...)
	sort.Slice(ats, func(i, j int) bool { return ats[i] < ats[j] })
	lookback := int64(5 * 60)
	// Samples only around each instant: a year of minutely samples is not needed to answer at a few instants.
	ctx := context.Background()
	app := db.Appender(ctx)
	seen := map[int64]bool{}
	for _, at := range ats {
		for t := at - lookback + 1; t <= at; t += in.Interval {
			if seen[t] {
				continue
			}
			seen[t] = true
			for _, s := range in.Series {
				if _, err := app.Append(0, labels.FromMap(s.Labels), t*1000, s.Value); err != nil {
					return fmt.Errorf("appending %v at %d: %w", s.Labels, t, err)
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("committing samples: %w", err)
	}

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: time.Duration(lookback) * time.Second})
	var out []result
	for _, at := range in.At {
		for _, expr := range in.Exprs {
			r := result{At: at, Expr: expr, Vector: []sample{}}
			q, err := engine.NewInstantQuery(ctx, db, nil, expr, time.Unix(at, 0))
			if err != nil {
				r.Error = err.Error()
				out = append(out, r)
				continue
			}
			res := q.Exec(ctx)
			if res.Err != nil {
				r.Error = res.Err.Error()
			} else {
				switch v := res.Value.(type) {
				case promql.Vector:
					for _, s := range v {
						r.Vector = append(r.Vector, sample{Labels: s.Metric.Map(), Value: s.F})
					}
				case promql.Scalar:
					r.Vector = append(r.Vector, sample{Labels: map[string]string{}, Value: v.V})
				default:
					r.Error = fmt.Sprintf("unexpected result type %s", res.Value.Type())
				}
			}
			q.Close()
			out = append(out, r)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func parseText() error {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(os.Stdin)
	if err != nil {
		return err
	}
	out := map[string]map[string]any{}
	for name, family := range families {
		out[name] = map[string]any{"type": family.GetType().String(), "samples": len(family.GetMetric())}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
