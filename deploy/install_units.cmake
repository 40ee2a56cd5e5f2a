# deploy/install_units.cmake - run by `cmake --install` (and cpack): writes the systemd units
# from their templates with the installed paths, then installs them. Expects RT_UNIT_SRC
# (deploy/), RT_UNIT_TMP (a scratch directory), RT_UNIT_DIR, RT_BINDIR, RT_DOCDIR and
# RT_CONFDIR, the last four absolute.
foreach(unit rt-publisher@.service rt-subscriber@.service rt-relay@.service)
  file(READ "${RT_UNIT_SRC}/${unit}.in" text)
  foreach(var RT_BINDIR RT_DOCDIR RT_CONFDIR)
    string(REPLACE "@${var}@" "${${var}}" text "${text}")
  endforeach()
  if(text MATCHES "@RT_[A-Z_]+@")
    message(FATAL_ERROR "${unit}.in: ${CMAKE_MATCH_0} has no value")
  endif()
  file(WRITE "${RT_UNIT_TMP}/${unit}" "${text}")
  file(INSTALL "${RT_UNIT_TMP}/${unit}" DESTINATION "${RT_UNIT_DIR}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
