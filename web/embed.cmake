# web/embed.cmake - writes a C source that holds the bytes of a file, to build a page into a program.
#
#   cmake -DIN=dashboard.html -DOUT=dashboard_html.c -DNAME=rt_dashboard_html
#         -DHEADER=dashboard.h -P embed.cmake
#
# OUT includes HEADER (which declares both) and defines
#   const char NAME[]: the bytes of IN, every one written as \xNN, then a NUL;
#   const size_t NAME_len: the number of bytes of IN, without that NUL.
# Run by add_custom_command with IN in its DEPENDS, so that editing IN rebuilds OUT.

foreach(var IN ITEMS IN OUT NAME HEADER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" nhex)
get_filename_component(in_name "${IN}" NAME)

# 16 bytes a line, each as an escape, so that no byte can end the literal or a line.
set(lines "")
set(pos 0)
while(pos LESS nhex)
  string(SUBSTRING "${hex}" ${pos} 32 chunk)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" chunk "${chunk}")
  string(APPEND lines "\n    \"${chunk}\"")
  math(EXPR pos "${pos} + 32")
endwhile()
if(lines STREQUAL "")
  set(lines "\n    \"\"")
endif()

file(WRITE "${OUT}"
  "/* Written by web/embed.cmake from ${in_name} at build time: edit ${in_name} instead. */\n"
  "#include \"${HEADER}\"\n"
  "\n"
  "const char ${NAME}[] =${lines};\n"
  "const size_t ${NAME}_len = sizeof ${NAME} - 1;\n")
