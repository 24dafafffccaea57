-- Loads tollgate's shared library into LuaJIT through its FFI, with the declarations
-- read from the committed header: what the example gateway (gateway.lua) and the nginx
-- module (nginx/tollgate_nginx.lua) share.
--
--   local tg, consts = require("tollgate_ffi").load(header_path, lib_path)
--
-- `lib_path` nil loads the installed library by its soname, libtollgate.so.N (N: the
-- header's TOLLGATE_ABI_VERSION), as the dynamic linker would for a C program built
-- against this header.

local ffi = require("ffi")

local M = {}

-- LuaJIT's cdef takes plain declarations: keep the header's C11 branch (no C++, no
-- C23), drop the preprocessor lines, and collect the #define constants.
local function read_header(path)
  local f = assert(io.open(path, "r"))
  local out, consts, active = {}, {}, { true }
  local function on() for _, a in ipairs(active) do if not a then return false end end return true end
  for line in f:lines() do
    local directive = line:match("^#%s*(%a+)")
    if directive == "if" or directive == "ifdef" or directive == "ifndef" then
      -- Neither __cplusplus nor C23 nor the include guard is defined here.
      local cond = line:match("^#%s*%a+%s*(.*)$")
      local mentions = cond:find("__cplusplus") or cond:find("202311L")
      active[#active + 1] = (directive == "ifndef") or not mentions
    elseif directive == "else" then
      active[#active] = not active[#active]
    elseif directive == "endif" then
      active[#active] = nil
    elseif directive == "define" then
      local name, value = line:match("^#define%s+(TOLLGATE_[%w_]+)%s+(.+)$")
      if name and on() then consts[name] = value end
    elseif directive == "include" then
      -- stdbool.h, stddef.h, stdint.h: LuaJIT knows their types
    elseif on() then
      out[#out + 1] = line
    end
  end
  f:close()
  return table.concat(out, "\n"), consts
end

local loaded = nil

-- The library and the header's constants; declared once per Lua state (cdef twice
-- would fail on the redefined types).
function M.load(header_path, lib_path)
  if loaded then return loaded.tg, loaded.consts end
  local declarations, consts = read_header(header_path)
  ffi.cdef(declarations)
  local tg = ffi.load(lib_path or ("libtollgate.so." .. consts.TOLLGATE_ABI_VERSION))
  assert(tg.tollgate_abi_version() == tonumber(consts.TOLLGATE_ABI_VERSION),
    "the library's ABI version differs from the header's")
  loaded = { tg = tg, consts = consts }
  return tg, consts
end

return M
