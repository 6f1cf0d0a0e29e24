// The figures panel: polls /stats, draws each series of the last minute as an SVG line, and
// starts a burst of slow operations. Plain DOM and SVG, no library.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const chart = document.getElementById("chart");
  const statsLine = document.getElementById("stats");
  const burstButton = document.getElementById("burst");
  const burstStatus = document.getElementById("burst-status");
  const WIDTH = 300, HEIGHT = 60, WINDOW_SECONDS = 60;

  // Each figure gets an SVG with a line and a label for the highest value shown.
  for (const figure of chart.querySelectorAll("figure")) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.append(document.createElementNS(SVG, "polyline"));
    const peak = document.createElementNS(SVG, "text");
    peak.setAttribute("class", "peak"); peak.setAttribute("x", 2); peak.setAttribute("y", 9);
    svg.append(peak);
    figure.append(svg);
  }

  function draw(samples) {
    const end = samples.length ? samples[samples.length - 1].t : 0;
    for (const figure of chart.querySelectorAll("figure")) {
      const key = figure.dataset.series;
      const values = samples.map((s) => s[key]);
      const top = Math.max(1, ...values);
      const points = samples.map((s) => {
        const x = WIDTH * (1 - (end - s.t) / WINDOW_SECONDS);
        const y = HEIGHT - 2 - (HEIGHT - 12) * (s[key] / top);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      figure.querySelector("polyline").setAttribute("points", points.join(" "));
      figure.querySelector(".peak").textContent = `max ${top}`;
      figure.querySelector("b").textContent = values.length ? values[values.length - 1] : "\u2013";
    }
    if (samples.length) chart.dataset.seq = samples[samples.length - 1].seq;
  }

  function showBurst(burst) {
    if (!burst) return;
    const state = burst.running ? "running" : "finished";
    const closing = burst.running && burst.done + burst.failed === burst.count;
    burstStatus.textContent = `burst ${state}: ${burst.done} of ${burst.count} done` +
      (burst.failed ? `, ${burst.failed} failed (${burst.last_error})` : "") +
      (closing ? ", closing their cursors" : "") + ` in ${burst.elapsed} s`;
    burstStatus.dataset.state = state;
    burstStatus.dataset.done = burst.done;
    burstButton.disabled = burst.running;
  }

  async function poll() {
    const asked = performance.now();
    try {
      const s = await (await fetch("/stats", {cache: "no-store"})).json();
      const took = Math.round(performance.now() - asked);
      draw(s.samples);
      showBurst(s.burst);
      statsLine.textContent =
        `${s.operations_per_second} operations/s \u00b7 ${s.operations_in_flight} in flight` +
        ` \u00b7 ${s.connections_open} connections open, ${s.connections_checked_out} in use` +
        ` \u00b7 this page's request answered in ${took} ms`;
    } catch (error) {
      statsLine.textContent = `figures unavailable: ${error}`;
    }
    setTimeout(poll, 500);
  }

  burstButton.addEventListener("click", async () => {
    burstButton.disabled = true;
    const response = await fetch("/burst", {method: "POST"});
    if (response.ok) showBurst(await response.json());
    else { burstStatus.textContent = response.statusText; burstButton.disabled = false; }
  });

  poll();
})();
