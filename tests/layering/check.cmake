# Layering check, run by ctest (tests/CMakeLists.txt, layering_*): builds each
# probe target in BUILD_DIR. FORBIDDEN probes include a header of a part the
# probe's part may not use and must fail, for that reason ("No such file");
# ALLOWED probes include one it may use and must compile, so a failure above
# is the include's doing and not a broken probe.
foreach(probe IN LISTS FORBIDDEN ALLOWED)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${probe}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  list(FIND ALLOWED ${probe} is_allowed)
  if(is_allowed GREATER -1)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${probe}: an allowed include does not compile:\n${out}")
    endif()
  elseif(rc EQUAL 0)
    message(FATAL_ERROR "${probe}: a forbidden include compiled")
  elseif(NOT out MATCHES "postino/[a-z_]+\\.h: No such file")
    message(FATAL_ERROR "${probe}: failed, but not for the include:\n${out}")
  endif()
  message(STATUS "${probe}: as DESIGN.md says")
endforeach()
