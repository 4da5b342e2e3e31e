{
  "targets": [
    {
      "target_name": "shifter_munge",
      "sources": ["munge.c"],
      "libraries": ["-lmunge"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
