-- Shadow simulation's fit: the paper venue's parameters that would have made its model match
-- each network venue over the period, from the market orders the venue filled (shadow_orders).
-- uses: shadow_orders
-- @day_start TIMESTAMP: the period's first instant (UTC)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: one account, or NULL for every account
--
-- slippage_bps: the median of the venue's slippage against the arrival touch (the price the
-- paper venue slips a market order from), at least 0: execution.simulation.slippage_bps with
-- slippage_model fixed. latency_mean_ms: the mean time from the send to the venue's first fill:
-- execution.simulation.latency.mean_ms. median_slippage_mid_bps: the venue's median slippage
-- against the arrival mid, for comparison with the execution quality tables.
WITH market AS (
  SELECT
    *,
    PERCENTILE_CONT(real_slippage_bps, 0.5) OVER (PARTITION BY venue) AS median_slippage_bps,
    PERCENTILE_CONT(real_slippage_mid_bps, 0.5) OVER (PARTITION BY venue)
      AS median_slippage_mid_bps
  FROM shadow_orders
  WHERE order_type = 'MARKET' AND real_price IS NOT NULL
)
SELECT
  venue,
  COUNT(*) AS market_orders,
  GREATEST(ANY_VALUE(median_slippage_bps), 0) AS slippage_bps,
  AVG(real_latency_ms) AS latency_mean_ms,
  ANY_VALUE(median_slippage_mid_bps) AS median_slippage_mid_bps,
  AVG(price_error_bps) AS mean_price_error_bps
FROM market
GROUP BY venue
ORDER BY venue
