# common/version.cmake - writes OUT, a C file defining rt_version_text ("VERSION (git
# REVISION)"), from the file VERSION and the git revision of the checkout SRC ("-modified"
# when tracked files differ from it; "unknown" outside a git checkout). Run at every
# build; OUT is rewritten only when its text changes, so nothing is rebuilt for nothing.
file(STRINGS "${SRC}/VERSION" version LIMIT_COUNT 1)
execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0 OR rev STREQUAL "")
  set(rev "unknown")
else()
  execute_process(COMMAND git -C "${SRC}" status --porcelain --untracked-files=no
                  OUTPUT_VARIABLE changed ERROR_QUIET)
  if(NOT changed STREQUAL "")
    set(rev "${rev}-modified")
  endif()
endif()
set(text "/* Written by common/version.cmake at build time. */\n#include \"rt.h\"\nconst char *const rt_version_text = \"${version} (git ${rev})\";\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
