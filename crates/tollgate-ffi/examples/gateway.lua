-- The example gateway in LuaJIT, the way an OpenResty or Kong plugin embeds tollgate:
-- the shared library through LuaJIT's FFI, declarations read from the committed header.
-- Same input and answers as gateway.c.
--
--   make -C crates/tollgate-ffi install PREFIX=/tmp/tg
--   LD_LIBRARY_PATH=/tmp/tg/lib luajit crates/tollgate-ffi/examples/gateway.lua \
--       crates/tollgate-ffi/examples/gateway.toml < crates/tollgate-ffi/examples/requests.txt
--
-- It loads the installed library by its soname, libtollgate.so.N (N: the header's
-- TOLLGATE_ABI_VERSION), as the dynamic linker would for a C program built against this
-- header; TOLLGATE_LIB names another file (e.g. target/release/libtollgate_ffi.so).
--
-- In a gateway, create the engine once per worker (init_worker_by_lua) and call
-- decide() from the access phase; the engine is safe to share between threads.

local ffi = require("ffi")

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local header_path = os.getenv("TOLLGATE_HEADER") or (here .. "/../include/tollgate.h")

package.path = here .. "/?.lua;" .. package.path
local tg = require("tollgate_ffi").load(header_path, os.getenv("TOLLGATE_LIB"))

local function last_error()
  local buf, n = ffi.new("char[1024]"), ffi.new("size_t[1]")
  tg.tollgate_last_error(buf, 1024, n)
  return ffi.string(buf, n[0])
end

local path = assert(arg[1], "usage: gateway.lua POLICY.toml < requests")
local engine_out = ffi.new("tollgate_engine*[1]")
if tg.tollgate_engine_from_file(path, #path, engine_out) ~= tg.TOLLGATE_RESULT_OK then
  io.stderr:write("gateway: loading the policy: ", last_error(), "\n")
  os.exit(1)
end
local engine = ffi.gc(engine_out[0], tg.tollgate_engine_free)

local value, n = ffi.new("char[256]"), ffi.new("size_t[1]")
local function header(d, which)
  if tg.tollgate_engine_header(engine, d, which, value, 256, n) == tg.TOLLGATE_RESULT_OK then
    io.write(ffi.string(tg.tollgate_header_name(which)), ": ", ffi.string(value, n[0]), "\n")
  end
end

-- The request's fields, in the order of the input's columns. The C example passes them
-- as (name, value) attributes; this one fills a tollgate_request, the cheaper entry
-- point (no names to match), so the two examples also check that both decide alike.
local columns = { "method", "route", "token", "tenant", "client" }
local request = ffi.new("tollgate_request")
local d = ffi.new("tollgate_decision")
local event = ffi.new("char[1024]")

for line in io.lines() do
  if line:match("^metrics") then
    -- The text can grow between two calls (a counter gains a digit): retry with the
    -- size the library reports, plus some slack, until it fits.
    local probe = ffi.new("char[1]")
    local rc = tg.tollgate_engine_metrics(engine, probe, 1, n)
    local text
    for _ = 1, 8 do
      if rc ~= tg.TOLLGATE_RESULT_BUFFER_TOO_SMALL then break end
      local size = n[0] + math.floor(tonumber(n[0]) / 8) + 64
      text = ffi.new("char[?]", size)
      rc = tg.tollgate_engine_metrics(engine, text, size, n)
    end
    if rc ~= tg.TOLLGATE_RESULT_OK then error("tollgate_engine_metrics: " .. ffi.string(tg.tollgate_result_name(rc))) end
    io.write(ffi.string(text, n[0]))
  elseif line ~= "" and not line:match("^#") then
    local fields = {}
    for field in line:gmatch("%S+") do
      if #fields < 5 then fields[#fields + 1] = field end
    end
    -- Zeroed: absent fields, the class's cost, the engine's clock.
    ffi.fill(request, ffi.sizeof(request))
    for i, field in ipairs(fields) do
      local f = request[columns[i]]
      f.ptr, f.len = field, #field
    end
    -- `fields` keeps the Lua strings alive while the request points into them.
    local rc = tg.tollgate_engine_decide_request(engine, request, d)
    if rc ~= tg.TOLLGATE_RESULT_OK then
      io.write("400 Bad Request\n", last_error(), "\n\n")
    else
      if d.allowed then
        io.write("200 OK\n")
      elseif d.reason == tg.TOLLGATE_REASON_REVOKED or d.reason == tg.TOLLGATE_REASON_UNKNOWN_KEY
          or d.reason == tg.TOLLGATE_REASON_TERMINATED then
        io.write("403 Forbidden (", ffi.string(tg.tollgate_reason_name(d.reason)), ")\n")
      elseif d.reason == tg.TOLLGATE_REASON_UNAVAILABLE or d.reason == tg.TOLLGATE_REASON_JOURNAL_FAILING then
        io.write("503 Service Unavailable (", ffi.string(tg.tollgate_reason_name(d.reason)), ")\n")
      else
        io.write("429 Too Many Requests (", ffi.string(tg.tollgate_reason_name(d.reason)), ")\n")
      end
      header(d, tg.TOLLGATE_HEADER_POLICY)
      header(d, tg.TOLLGATE_HEADER_RATELIMIT)
      header(d, tg.TOLLGATE_HEADER_RETRY_AFTER)
      io.write("\n")
      while tg.tollgate_engine_next_event(engine, event, 1024, n) == tg.TOLLGATE_RESULT_OK do
        io.stderr:write("event: ", ffi.string(event, n[0]), "\n")
      end
    end
  end
end
