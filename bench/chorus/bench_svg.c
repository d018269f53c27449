/* bench_svg.c: the hand-written SVG chart of a --sweep (bench.h): bars for
 * throughput on the left axis, a line for p99 latency on the right. */
#include <math.h>

#include "bench.h"

/* A "nice" axis maximum and step (1, 2 or 5 times a power of ten) with
 * about five ticks above @max. */
static void nice_axis(double max, double *top, double *step) {
  if (!(max > 0.0))
    max = 1.0;
  double raw = max / 5.0;
  double mag = pow(10.0, floor(log10(raw)));
  double f = raw / mag;
  double s = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
  *step = s * mag;
  *top = ceil(max / *step) * *step;
}

/* Writes @s with &, < and > escaped. */
static void put_text(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '&')
      fputs("&amp;", f);
    else if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else
      fputc(*s, f);
  }
}

void bench_svg_sweep(FILE *f, const char *title,
                     const struct bench_svg_point *pts, size_t n) {
  const double left = 80, right = 80, top = 60, bottom = 90;
  /* at least 640 px of plot, so the title fits over a short sweep */
  double slot = n > 0 ? (n > 8 ? 70.0 : 90.0) : 90.0;
  if (slot * (double)(n > 0 ? n : 1) < 640.0)
    slot = 640.0 / (double)(n > 0 ? n : 1);
  const double plot_w = slot * (double)(n > 0 ? n : 1), plot_h = 320;
  const double width = left + plot_w + right, height = top + plot_h + bottom;
  double ops_max = 0, p99_max = 0;
  for (size_t i = 0; i < n; i++) {
    if (pts[i].ops > ops_max)
      ops_max = pts[i].ops;
    if (pts[i].p99_ms > p99_max)
      p99_max = pts[i].p99_ms;
  }
  double ops_top, ops_step, lat_top, lat_step;
  nice_axis(ops_max, &ops_top, &ops_step);
  nice_axis(p99_max, &lat_top, &lat_step);

  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
          "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
          "font-family=\"sans-serif\" font-size=\"12\">\n",
          width, height, width, height);
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f,
          "<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" "
          "font-size=\"15\" font-weight=\"bold\">",
          width / 2);
  put_text(f, title);
  fputs("</text>\n", f);

  /* grid and left axis (throughput) */
  for (double v = 0; v <= ops_top + ops_step / 2; v += ops_step) {
    double y = top + plot_h - v / ops_top * plot_h;
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"#ddd\"/>\n",
            left, y, left + plot_w, y);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
            "fill=\"#2a5599\">%.0f</text>\n",
            left - 6, y + 4, v);
  }
  /* right axis (p99 ms) */
  for (double v = 0; v <= lat_top + lat_step / 2; v += lat_step) {
    double y = top + plot_h - v / lat_top * plot_h;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c0392b\">%g</text>\n",
            left + plot_w + 6, y + 4, v);
  }
  fprintf(f,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"black\"/>\n",
          left, top, left, top + plot_h);
  fprintf(f,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"black\"/>\n",
          left + plot_w, top, left + plot_w, top + plot_h);
  fprintf(f,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"black\"/>\n",
          left, top + plot_h, left + plot_w, top + plot_h);
  fprintf(f,
          "<text transform=\"translate(18 %.1f) rotate(-90)\" "
          "text-anchor=\"middle\" fill=\"#2a5599\">throughput (ops/s)"
          "</text>\n",
          top + plot_h / 2);
  fprintf(f,
          "<text transform=\"translate(%.1f %.1f) rotate(90)\" "
          "text-anchor=\"middle\" fill=\"#c0392b\">p99 latency (ms)</text>\n",
          width - 18, top + plot_h / 2);
  fprintf(f,
          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">setting "
          "(read / write quorum)</text>\n",
          left + plot_w / 2, height - 18);

  /* bars, labels */
  for (size_t i = 0; i < n; i++) {
    double x = left + slot * (double)i;
    double h = pts[i].ops / ops_top * plot_h;
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"#6b9bd1\"><title>%.0f ops/s</title></rect>\n",
            x + slot * 0.15, top + plot_h - h, slot * 0.7, h, pts[i].ops);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
            "font-size=\"10\" stroke=\"white\" stroke-width=\"3\" "
            "paint-order=\"stroke\">%.0f</text>\n",
            x + slot / 2, top + plot_h - h - 4, pts[i].ops);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
            "font-size=\"11\">",
            x + slot / 2, top + plot_h + 18);
    put_text(f, pts[i].label);
    fputs("</text>\n", f);
  }
  /* p99 line */
  if (n > 0) {
    fputs("<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" "
          "points=\"",
          f);
    for (size_t i = 0; i < n; i++)
      fprintf(f, "%s%.1f,%.1f", i ? " " : "",
              left + slot * (double)i + slot / 2,
              top + plot_h - pts[i].p99_ms / lat_top * plot_h);
    fputs("\"/>\n", f);
    for (size_t i = 0; i < n; i++)
      fprintf(f,
              "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#c0392b\">"
              "<title>p99 %.2f ms</title></circle>\n",
              left + slot * (double)i + slot / 2,
              top + plot_h - pts[i].p99_ms / lat_top * plot_h, pts[i].p99_ms);
  }
  /* legend */
  double lx = left + 10, ly = top - 22;
  fprintf(f,
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" "
          "fill=\"#6b9bd1\"/><text x=\"%.1f\" y=\"%.1f\">throughput "
          "(left axis)</text>\n",
          lx, ly, lx + 20, ly + 10);
  fprintf(f,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"#c0392b\" stroke-width=\"2\"/><circle cx=\"%.1f\" "
          "cy=\"%.1f\" r=\"4\" fill=\"#c0392b\"/><text x=\"%.1f\" "
          "y=\"%.1f\">p99 latency (right axis)</text>\n",
          lx + 170, ly + 5, lx + 194, ly + 5, lx + 182, ly + 5, lx + 200,
          ly + 10);
  fputs("</svg>\n", f);
}
