// A small SVG line chart: time on x, one or two series on y, a readout of
// the sample under the pointer. No library: a handful of paths.

const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// draw renders series ([{points: [[t, v|null]], cls, area}]) over [t0, t1]
// into svg. fmt formats a y value for the axis; onHover(i|null) is told the
// index into the first series' points under the pointer.
export function draw(svg, { series, t0, t1, fmt, minMax = 1, onHover }) {
  const W = svg.clientWidth || 600;
  const H = svg.clientHeight || 150;
  const L = 44, R = 10, T = 10, B = 20;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  let vmax = 0;
  for (const s of series) for (const [, v] of s.points) if (v !== null && v > vmax) vmax = v;
  const ymax = niceMax(Math.max(vmax, minMax));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);

  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    svg.append(el("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    if (i % 2 === 0) svg.append(el("text", { class: "axis-label", x: L - 6, y: y(v) + 3.5, "text-anchor": "end" }, fmt(v)));
  }
  // Time ticks: the smallest step that keeps them at six or fewer.
  const spanS = (t1 - t0) / 1000;
  const step = [10, 15, 30, 60, 120, 300, 600].find((st) => spanS / st <= 6) || 600;
  for (let k = 0; k * step <= spanS + 0.5; k++) {
    const t = t1 - k * step * 1000;
    const label = k === 0 ? "now" : step < 60 ? `−${k * step} s` : `−${(k * step) / 60} min`;
    const anchor = k === 0 ? "end" : x(t) - L < 20 ? "start" : "middle";
    svg.append(el("text", { class: "axis-label", x: x(t), y: H - 5, "text-anchor": anchor }, label));
  }

  let any = false;
  series.forEach((s) => {
    let d = "", area = "", open = false, first = 0, last = 0;
    for (const [t, v] of s.points) {
      if (v === null || t < t0) { if (open && s.area) area += `L${last},${y(0)}L${first},${y(0)}Z`; open = false; continue; }
      any = true;
      const px = x(t).toFixed(1), py = y(v).toFixed(1);
      if (!open) { d += `M${px},${py}`; area += `M${px},${y(0)}L${px},${py}`; first = px; open = true; }
      else { d += `L${px},${py}`; area += `L${px},${py}`; }
      last = px;
    }
    if (open && s.area) area += `L${last},${y(0)}Z`;
    if (s.area && area) svg.append(el("path", { class: "area", d: area }));
    if (d) svg.append(el("path", { class: s.cls, d }));
  });
  if (!any) {
    svg.append(el("text", { class: "nodata", x: (L + W - R) / 2, y: H / 2, "text-anchor": "middle" }, "no samples yet"));
  }

  const cursor = el("line", { class: "cursor", y1: T, y2: H - B, visibility: "hidden" });
  const dot = el("circle", { class: "dot", r: 3.5, visibility: "hidden" });
  svg.append(cursor, dot);
  const pts = series[0].points;
  svg.onmousemove = (ev) => {
    const r = svg.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * W;
    let best = -1, bd = Infinity;
    pts.forEach(([t], i) => {
      const dd = Math.abs(x(t) - px);
      if (t >= t0 && dd < bd) { bd = dd; best = i; }
    });
    if (best < 0) return;
    const [t, v] = pts[best];
    cursor.setAttribute("x1", x(t)); cursor.setAttribute("x2", x(t));
    cursor.setAttribute("visibility", "visible");
    if (v !== null) {
      dot.setAttribute("cx", x(t)); dot.setAttribute("cy", y(v));
      dot.setAttribute("visibility", "visible");
    } else dot.setAttribute("visibility", "hidden");
    onHover && onHover(best);
  };
  svg.onmouseleave = () => {
    cursor.setAttribute("visibility", "hidden");
    dot.setAttribute("visibility", "hidden");
    onHover && onHover(null);
  };
}
