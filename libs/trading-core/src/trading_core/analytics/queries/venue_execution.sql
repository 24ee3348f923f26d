-- Exchange comparison: execution quality per venue over the period, side by side, or per venue
-- and day. Built on order_execution (the orders submitted in the period that reached a venue).
-- uses: order_execution
-- @day_start TIMESTAMP: the period's first instant (UTC)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: one account, or NULL for every account
-- @per_day BOOL: a row per venue and day (TRUE), or per venue over the whole period (FALSE)
--
-- Latency percentiles are continuous (interpolated) over the orders that reached that point.
-- rejection_rate: orders whose last report is REJECTED over the orders sent to the venue.
-- fill_rate: filled over ordered value, both at the arrival mid (quantities of different
-- instruments do not add up). slippage_bps, fee_bps and shortfall_bps are ratios of the sums (so
-- weighted by size), defined as in order_execution.
WITH per_order AS (
  SELECT *, IF(@per_day, day, NULL) AS period_day
  FROM order_execution
  WHERE venue IS NOT NULL
),
windowed AS (
  SELECT
    *,
    PERCENTILE_CONT(accept_ms, 0.5) OVER w AS accept_p50_ms,
    PERCENTILE_CONT(accept_ms, 0.95) OVER w AS accept_p95_ms,
    PERCENTILE_CONT(first_fill_ms, 0.5) OVER w AS first_fill_p50_ms,
    PERCENTILE_CONT(first_fill_ms, 0.95) OVER w AS first_fill_p95_ms,
    PERCENTILE_CONT(last_fill_ms, 0.5) OVER w AS last_fill_p50_ms,
    PERCENTILE_CONT(last_fill_ms, 0.95) OVER w AS last_fill_p95_ms
  FROM per_order
  WINDOW w AS (PARTITION BY venue, period_day)
)
SELECT
  venue,
  period_day AS day,
  COUNT(*) AS orders,
  COUNTIF(last_report = 'REJECTED') AS rejected,
  SAFE_DIVIDE(COUNTIF(last_report = 'REJECTED'), COUNT(*)) AS rejection_rate,
  COUNTIF(fills > 0) AS filled_orders,
  SUM(fills) AS fills,
  SAFE_DIVIDE(CAST(SUM(filled_at_arrival) AS FLOAT64), CAST(SUM(ordered_at_arrival) AS FLOAT64))
    AS fill_rate,
  ANY_VALUE(accept_p50_ms) AS accept_p50_ms,
  ANY_VALUE(accept_p95_ms) AS accept_p95_ms,
  ANY_VALUE(first_fill_p50_ms) AS first_fill_p50_ms,
  ANY_VALUE(first_fill_p95_ms) AS first_fill_p95_ms,
  ANY_VALUE(last_fill_p50_ms) AS last_fill_p50_ms,
  ANY_VALUE(last_fill_p95_ms) AS last_fill_p95_ms,
  SUM(notional) AS notional,
  SUM(fees) AS fees,
  SAFE_DIVIDE(CAST(SUM(slippage) AS FLOAT64), CAST(SUM(filled_at_arrival) AS FLOAT64)) * 10000
    AS slippage_bps,
  SAFE_DIVIDE(CAST(SUM(fees) AS FLOAT64), CAST(SUM(notional) AS FLOAT64)) * 10000 AS fee_bps,
  SUM(shortfall) AS shortfall,
  SAFE_DIVIDE(CAST(SUM(shortfall) AS FLOAT64), CAST(SUM(ordered_at_arrival) AS FLOAT64)) * 10000
    AS shortfall_bps
FROM windowed
GROUP BY venue, period_day
ORDER BY venue, day
