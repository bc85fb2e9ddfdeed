// Memories and a delay line for the Xilinx cell-type mapping tests (tests/test_synth.py):
// a 512x36 RAM (one RAMB18 worth), a 2048x36 RAM (two RAMB36 worth), a 32x8 RAM
// (distributed LUT RAM) and a 16-deep shift register (SRL).
module mem (
    input  wire        clk,
    input  wire        we,
    input  wire [10:0] waddr,
    input  wire [10:0] raddr,
    input  wire [35:0] wdata,
    output reg  [35:0] q_small,
    output reg  [35:0] q_big,
    output wire [7:0]  q_lut,
    output wire [7:0]  q_srl
);
    reg [35:0] small [0:511];
    reg [35:0] big   [0:2047];
    reg [7:0]  tiny  [0:31];
    reg [127:0] delay;
    always @(posedge clk) begin
        if (we) begin
            small[waddr[8:0]] <= wdata;
            big[waddr]        <= wdata;
            tiny[waddr[4:0]]  <= wdata[7:0];
        end
        q_small <= small[raddr[8:0]];
        q_big   <= big[raddr];
        delay <= {delay[119:0], wdata[7:0]};
    end
    assign q_lut = tiny[raddr[4:0]];
    assign q_srl = delay[127:120];
endmodule
