package dashboard

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/keygate/keygate/manage"
)

// Chart geometry, in SVG user units; the SVG scales to its container.
const (
	chartWidth   = 720.0
	chartHeight  = 220.0
	chartLeft    = 52.0 // room for the y-axis labels
	chartRight   = 8.0
	chartTop     = 12.0
	chartBottom  = 28.0 // room for the x-axis labels
	chartGridRow = 4
)

// usageChart draws the usage as stacked bars per hour: successful requests,
// errors and 429s. It is plain SVG written on the server, so it needs no
// script, and it carries a title and a text summary for screen readers.
func usageChart(u *manage.Usage) template.HTML {
	var peak int64
	for _, b := range u.Buckets {
		peak = max(peak, b.Requests, b.Errors+b.RateLimited)
	}
	top := niceCeiling(peak)
	plotW := chartWidth - chartLeft - chartRight
	plotH := chartHeight - chartTop - chartBottom
	y := func(v int64) float64 { return chartTop + plotH - float64(v)/float64(top)*plotH }
	slot := plotW / float64(len(u.Buckets))
	barW := math.Max(slot*0.75, 1)

	var b strings.Builder
	summary := fmt.Sprintf("%s: %s requests, %s errors, %s rate-limited (429).", u.Period.Label(),
		formatNumber(u.Total.Requests), formatNumber(u.Total.Errors), formatNumber(u.Total.RateLimited))
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">`, chartWidth, chartHeight)
	fmt.Fprintf(&b, `<title id="chart-title">Requests per hour, %s (UTC)</title>`, html.EscapeString(strings.ToLower(u.Period.Label())))
	fmt.Fprintf(&b, `<desc id="chart-desc">%s</desc>`, html.EscapeString(summary))

	for i := 0; i <= chartGridRow; i++ {
		v := top * int64(i) / chartGridRow
		fmt.Fprintf(&b, `<line class="grid" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`, chartLeft, chartWidth-chartRight, y(v), y(v))
		fmt.Fprintf(&b, `<text class="axis" x="%g" y="%.1f" text-anchor="end">%s</text>`, chartLeft-6, y(v)+4, formatNumber(v))
	}
	for i, c := range u.Buckets {
		x := chartLeft + float64(i)*slot + (slot-barW)/2
		ok := max(c.Requests-c.Errors-c.RateLimited, 0)
		base := int64(0)
		fmt.Fprintf(&b, `<g><title>%s: %s requests, %s errors, %s rate-limited</title>`,
			c.Hour.UTC().Format("Mon Jan 2 15:04"), formatNumber(c.Requests), formatNumber(c.Errors), formatNumber(c.RateLimited))
		// An invisible full-height bar makes the hour's tooltip easy to hit.
		fmt.Fprintf(&b, `<rect class="hit" x="%.2f" y="%g" width="%.2f" height="%g"/>`, chartLeft+float64(i)*slot, chartTop, slot, plotH)
		for _, part := range []struct {
			class string
			n     int64
		}{{"ok", ok}, {"errors", c.Errors}, {"limited", c.RateLimited}} {
			if part.n == 0 {
				continue
			}
			fmt.Fprintf(&b, `<rect class="bar %s" x="%.2f" y="%.2f" width="%.2f" height="%.2f"/>`,
				part.class, x, y(base+part.n), barW, y(base)-y(base+part.n))
			base += part.n
		}
		b.WriteString(`</g>`)
		if label := hourLabel(c.Hour, u.Period); label != "" {
			fmt.Fprintf(&b, `<text class="axis" x="%.2f" y="%g" text-anchor="middle">%s</text>`,
				chartLeft+float64(i)*slot+slot/2, chartHeight-8, label)
		}
	}
	fmt.Fprintf(&b, `<line class="baseline" x1="%g" x2="%g" y1="%g" y2="%g"/>`, chartLeft, chartWidth-chartRight, chartTop+plotH, chartTop+plotH)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// hourLabel marks every sixth hour on a day chart and each midnight on a
// week chart.
func hourLabel(t time.Time, p manage.UsagePeriod) string {
	t = t.UTC()
	if p == manage.UsageWeek {
		if t.Hour() == 0 {
			return t.Format("Mon 2")
		}
		return ""
	}
	if t.Hour()%6 == 0 {
		return t.Format("15:04")
	}
	return ""
}

// niceCeiling rounds v up to 1, 2 or 5 times a power of ten, times the
// number of grid rows, so grid lines fall on round numbers.
func niceCeiling(v int64) int64 {
	if v <= 0 {
		return chartGridRow
	}
	step := float64(v) / chartGridRow
	mag := math.Pow(10, math.Floor(math.Log10(step)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= step {
			return int64(math.Ceil(m*mag)) * chartGridRow
		}
	}
	return v
}
